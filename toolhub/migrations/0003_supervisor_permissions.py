"""Supervisors manage ToolHub: switch and check sources, keep the catalog and documents."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Supervisors"
PERMISSIONS = {
    "toolsource": ("view", "change"),
    "vehicle": ("view", "add", "change", "delete"),
    "partcategory": ("view", "add", "change", "delete"),
    "part": ("view", "add", "change", "delete"),
    "catalogdocument": ("view", "add", "change", "delete"),
    "knowledgedocument": ("view", "add", "change", "delete"),
}


def grant(apps, schema_editor):
    # As in calls.0002: permissions are created after all migrations; make them now.
    app_config = apps.get_app_config("toolhub")
    # Restored after: the test fixture runs this on the live app registry.
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    codenames = [f"{action}_{model}" for model, actions in PERMISSIONS.items()
                 for action in actions]
    group.permissions.add(*Permission.objects.filter(content_type__app_label="toolhub",
                                                     codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("toolhub", "0002_default_sources_and_categories"),
                    ("calls", "0002_supervisors_group")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
