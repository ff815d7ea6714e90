# A supervisor can hang up a call from the console (voice.live): it ends
# "supervisor_hangup"; choices only, no column changes.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0009_callturn_waterfall'),
    ]

    operations = [
        migrations.AlterField(
            model_name='call',
            name='end_reason',
            field=models.CharField(blank=True, choices=[('caller_hangup', 'Caller hung up'), ('agent_hangup', 'Agent ended the call'), ('supervisor_hangup', 'A supervisor ended the call'), ('graceful_shutdown', 'FreeSWITCH graceful shutdown'), ('transfer', 'Transferred'), ('max_duration', 'Maximum duration reached'), ('idle_timeout', 'No audio (idle timeout)'), ('stale', 'Lost hang-up (reaped)'), ('blocked', 'Caller blocked'), ('protocol_error', 'Malformed input'), ('frame_too_large', 'Frame too large'), ('rate_limited', 'Message flood'), ('overloaded', 'Server overloaded'), ('busy', 'All lines busy'), ('server_error', 'Server error'), ('process_died', 'Web process died')], max_length=20),
        ),
    ]
