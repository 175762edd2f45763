from django.urls import path

from . import views
from .feeds import DigestFeed

urlpatterns = [
    path("", views.home, name="home"),
    path("check-your-inbox/", views.signup_sent, name="signup_sent"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("link/", views.email_link, name="email_link"),
    path("link/sent/", views.email_link_sent, name="email_link_sent"),
    path("manage/link/<str:token>/", views.manage_link, name="manage_link"),
    path("manage/offer/<str:token>/", views.accept_offer, name="accept_offer"),
    path("manage/", views.manage, name="manage"),
    path("manage/filters/", views.add_filter, name="add_filter"),
    path("manage/filters/<int:pk>/", views.edit_filter, name="edit_filter"),
    path("manage/topics/", views.save_topics, name="save_topics"),
    path("manage/schedule/", views.save_schedule, name="save_schedule"),
    path("manage/choices/", views.save_choices, name="save_choices"),
    path("manage/send-now/", views.send_now, name="send_now"),
    path("manage/pause/", views.pause, name="pause"),
    path("manage/resume/", views.resume, name="resume"),
    path("manage/unsubscribe/", views.unsubscribe_here, name="unsubscribe_here"),
    path("manage/feed/", views.reset_feed, name="reset_feed"),
    path("manage/likes/", views.pick_paper, name="pick_paper"),
    path("manage/likes/<int:pk>/undo/", views.undo_vote, name="undo_vote"),
    path("manage/suggestions/", views.save_suggestions, name="save_suggestions"),
    path("manage/data.json", views.download_data, name="download_data"),
    path("manage/delete/", views.delete_me, name="delete_me"),
    path("manage/sign-out/", views.sign_out, name="sign_out"),
    path("manage/sign-out-everywhere/", views.sign_out_everywhere, name="sign_out_everywhere"),
    path("preview.json", views.preview_json, name="preview"),
    path("help/filters/", views.filter_help, name="filter_help"),
    path("d/<str:token>/", views.digest_web, name="digest_web"),
    path("vote/<str:token>/", views.feedback, name="feedback"),
    path("feed/<str:secret>/", DigestFeed(), name="feed"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
