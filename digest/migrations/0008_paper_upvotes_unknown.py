# Unknown upvotes are stored as unknown.

from django.db import migrations, models


def forget_unknown_counts(apps, schema_editor):
    """A paper no page ever showed a count for was stored with 0 upvotes: unknown, not
    zero. Its count becomes empty (papers with a counted sighting keep theirs)."""
    Paper = apps.get_model("digest", "Paper")
    Sighting = apps.get_model("digest", "Sighting")
    counted = Sighting.objects.filter(upvotes__isnull=False).values("paper_id")
    Paper.objects.filter(upvotes=0).exclude(pk__in=counted).update(upvotes=None)


def unknown_counts_to_zero(apps, schema_editor):
    apps.get_model("digest", "Paper").objects.filter(upvotes__isnull=True).update(upvotes=0)


class Migration(migrations.Migration):

    dependencies = [
        ('digest', '0007_digestitem_reason_text'),
    ]

    operations = [
        migrations.AlterField(
            model_name='paper',
            name='ai_summary',
            field=models.TextField(blank=True, help_text="The source's one-paragraph summary, when it gives one.", verbose_name='AI summary'),
        ),
        migrations.AlterField(
            model_name='paper',
            name='upvotes',
            field=models.IntegerField(blank=True, help_text='Upvotes last seen; empty when no page showed a count.', null=True),
        ),
        migrations.RunPython(forget_unknown_counts, unknown_counts_to_zero),
    ]
