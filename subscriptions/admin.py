from django.contrib import admin

from .models import Filter, Subscriber


class FilterInline(admin.TabularInline):
    model = Filter
    extra = 0


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ("email", "frequency", "timezone", "next_digest_at", "confirmed_at")
    search_fields = ("email",)
    inlines = [FilterInline]
