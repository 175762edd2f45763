from django.contrib import admin

from .models import Digest, DigestItem, IngestRun, Paper


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ("title", "arxiv_id", "upvotes", "published_on", "first_seen_at", "hidden_at")
    search_fields = ("title", "arxiv_id")
    list_filter = ("published_on",)


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    list_display = (
        "source",
        "format",
        "status",
        "papers_parsed",
        "papers_new",
        "papers_updated",
        "started_at",
    )
    list_filter = ("status", "format")


class DigestItemInline(admin.TabularInline):
    model = DigestItem
    extra = 0
    raw_id_fields = ("paper", "subscriber")


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ("subscriber", "period", "status", "attempts", "sent_at")
    list_filter = ("status",)
    inlines = [DigestItemInline]
    raw_id_fields = ("subscriber",)
