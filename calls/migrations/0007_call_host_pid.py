# The web process that carries each call (host, pid, process start), so a process that
# starts after a crash can end the calls its dead predecessor left open.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0006_callturn_caller_text_raw'),
    ]

    operations = [
        migrations.AddField(
            model_name='call',
            name='host',
            field=models.CharField(blank=True, help_text='Host name of the web process that took the call.', max_length=255),
        ),
        migrations.AddField(
            model_name='call',
            name='pid',
            field=models.PositiveIntegerField(blank=True, help_text='Process id of that web process.', null=True, verbose_name='PID'),
        ),
        migrations.AddField(
            model_name='call',
            name='process_start',
            field=models.CharField(blank=True, help_text='Boot id and start time of that process, so a reused PID is told apart.', max_length=64),
        ),
        migrations.AlterField(
            model_name='call',
            name='end_reason',
            field=models.CharField(blank=True, choices=[('caller_hangup', 'Caller hung up'), ('agent_hangup', 'Agent ended the call'), ('graceful_shutdown', 'FreeSWITCH graceful shutdown'), ('transfer', 'Transferred'), ('max_duration', 'Maximum duration reached'), ('idle_timeout', 'No audio (idle timeout)'), ('stale', 'Lost hang-up (reaped)'), ('blocked', 'Caller blocked'), ('protocol_error', 'Malformed input'), ('frame_too_large', 'Frame too large'), ('rate_limited', 'Message flood'), ('overloaded', 'Server overloaded'), ('server_error', 'Server error'), ('process_died', 'Web process died')], max_length=20),
        ),
    ]
