"""Roles: what the "Moderators" group may do in the admin. Everything else (deleting
subscribers, changing sources, exporting addresses) is for superusers only."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth.management import create_permissions

__all__ = ["MODERATORS", "MODERATOR_PERMISSIONS", "ensure_moderators_group"]

MODERATORS = "Moderators"


# Model → actions a moderator may take.
MODERATOR_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "digest": {
        "paper": ("view", "change"),
        "topic": ("view", "add", "change", "delete"),
        "blockedterm": ("view", "add", "change", "delete"),
        "sighting": ("view",),
        "source": ("view",),
        "ingestrun": ("view",),
        "digest": ("view",),
        "digestitem": ("view",),
        "deliveryevent": ("view",),
    },
    "subscriptions": {
        # Lifting a bounce or complaint suppression is logged in the admin history.
        "subscriber": ("view", "lift_suppression"),
        # Filters flagged for review are kept (flag cleared) or removed by moderators.
        "filter": ("view", "change", "delete"),
    },
}


def ensure_moderators_group(apps: Any = None) -> Any:
    """Create or update the "Moderators" group with exactly the permissions of
    :data:`MODERATOR_PERMISSIONS`; returns the group.

    ``apps`` is a migration's app registry (``RunPython(lambda apps, schema_editor:
    ensure_moderators_group(apps))``) or None for the live one. Permissions Django has
    not created yet (it creates them after ``migrate``) are created first; those of
    models that do not exist yet are skipped.
    """
    registry = apps or django_apps
    for label in MODERATOR_PERMISSIONS:
        config = registry.get_app_config(label)
        # A migration's app configs carry no models module, which create_permissions
        # needs to see before it does anything.
        stub = getattr(config, "models_module", None) is None
        if stub:
            config.models_module = True
        create_permissions(config, verbosity=0, apps=registry)
        if stub:
            config.models_module = None
    group_model = registry.get_model("auth", "Group")
    permission_model = registry.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=MODERATORS)
    wanted = [
        (app, f"{action}_{model}")
        for app, models in MODERATOR_PERMISSIONS.items()
        for model, actions in models.items()
        for action in actions
    ]
    found = []
    for app, codename in wanted:
        found.extend(
            permission_model.objects.filter(content_type__app_label=app, codename=codename)
        )
    group.permissions.set(found)
    return group
