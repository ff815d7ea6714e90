# Each turn keeps its per-stage waterfall: when STT, routing, the LLM and TTS reached it,
# in ms after the caller stopped speaking (bench/voice_latency.py prints it).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0008_call_end_reason_busy'),
    ]

    operations = [
        migrations.AddField(
            model_name='callturn',
            name='waterfall',
            field=models.JSONField(blank=True, default=dict, help_text='When each stage reached this turn, in ms after the caller stopped speaking (stt_start, turn_start, stt_done, understood, routed, llm_request, llm_first_text, first_clause, tts_first_audio, first_audio_sent).'),
        ),
    ]
