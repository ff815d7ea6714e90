"""Supervisors manage policy variants (add, change, the admin's actions) and read rewards."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = {"policyvariant": ("view", "add", "change"), "callreward": ("view",)}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("calls")
    # Restored after: the test fixture runs this on the live app registry.
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Supervisors")
    codenames = [f"{a}_{m}" for m, actions in PERMISSIONS.items() for a in actions]
    group.permissions.add(*Permission.objects.filter(content_type__app_label="calls",
                                                     codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("calls", "0004_policy_variants")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
