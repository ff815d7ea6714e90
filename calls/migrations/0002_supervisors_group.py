"""Create the Supervisors group: view and change calls, turns and callers; never delete."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Supervisors"
MODELS = ("call", "callturn", "callernumber")
ACTIONS = ("view", "change")


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations run; create them now so a
    # fresh database gets a complete group in one migrate.
    app_config = apps.get_app_config("calls")
    # Restored after: the test fixture runs this on the live app registry.
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = previous

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    codenames = [f"{action}_{model}" for model in MODELS for action in ACTIONS]
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="calls", codename__in=codenames)
    )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
