"""The "Moderators" group: moderate papers, topics and blocked terms, view subscribers."""

from django.db import migrations


def create_moderators(apps, schema_editor):
    from digest.roles import ensure_moderators_group

    ensure_moderators_group(apps)


def remove_moderators(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Moderators").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("digest", "0003_sources_delivery_events_moderation"),
        ("subscriptions", "0003_links_feeds_bounces_review"),
    ]

    operations = [migrations.RunPython(create_moderators, remove_moderators)]
