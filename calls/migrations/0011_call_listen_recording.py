# Supervisors may listen to call recordings (calls.console.recordings): a permission of
# its own, granted to the Supervisors group (0002) here.

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations run; create this one now so
    # the group gets it in the same migrate.
    app_config = apps.get_app_config("calls")
    # Restored after: the test fixture runs this on the live app registry.
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = previous
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Supervisors")
    group.permissions.add(*Permission.objects.filter(content_type__app_label="calls",
                                                     codename="listen_recording"))


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="calls",
                              codename="listen_recording").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0010_call_end_reason_supervisor'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='call',
            options={'ordering': ['-started_at'],
                     'permissions': [('listen_recording', 'Can listen to call recordings')]},
        ),
        migrations.RunPython(grant, revoke),
    ]
