"""The record of what happened on the phone: calls, their turns, and hashed caller numbers.

No raw phone number is ever stored: callers and callees are HMAC hashes (see
``calls.phone``), each with the id of the key that made it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from calls.phone import PhoneHash
from calls.storage import recording_storage


class CallerNumber(models.Model):
    """One caller, known only by the keyed hash of their number."""

    key_id = models.CharField(max_length=16, help_text="Fingerprint of the key that made the hash.")
    digest = models.CharField(max_length=64, help_text="HMAC-SHA256 of the E.164 number.")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    call_count = models.PositiveIntegerField(default=0)
    blocked = models.BooleanField(
        default=False, help_text="Blocked callers are refused before the agent answers."
    )
    blocked_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["key_id", "digest"], name="caller_number_unique_hash"),
        ]

    def __str__(self) -> str:
        return self.phone_hash.short

    @property
    def phone_hash(self) -> PhoneHash:
        return PhoneHash(key_id=self.key_id, digest=self.digest)


class PolicyVariant(models.Model):
    """One way for the agent to behave; calls are routed between live variants."""

    name = models.SlugField(max_length=40, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False, help_text="Takes the calls when no other variant may; never blacklisted.")
    parameters = models.JSONField(default=dict, blank=True,
                                  help_text="See calls.variants.VariantParameters.")
    blacklisted = models.BooleanField(default=False)
    blacklisted_reason = models.CharField(max_length=300, blank=True)
    blacklisted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["is_default"],
                                               condition=models.Q(is_default=True),
                                               name="calls_one_default_variant")]

    def __str__(self) -> str:
        return self.name


class Call(models.Model):
    """One call forked to TOM by FreeSWITCH (or placed by a synthetic test)."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Status(models.TextChoices):
        NEW = "new", "New"
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    class EndReason(models.TextChoices):
        CALLER_HANGUP = "caller_hangup", "Caller hung up"
        AGENT_HANGUP = "agent_hangup", "Agent ended the call"
        SUPERVISOR_HANGUP = "supervisor_hangup", "A supervisor ended the call"
        GRACEFUL_SHUTDOWN = "graceful_shutdown", "FreeSWITCH graceful shutdown"
        TRANSFER = "transfer", "Transferred"
        MAX_DURATION = "max_duration", "Maximum duration reached"
        IDLE_TIMEOUT = "idle_timeout", "No audio (idle timeout)"
        STALE = "stale", "Lost hang-up (reaped)"
        BLOCKED = "blocked", "Caller blocked"
        PROTOCOL_ERROR = "protocol_error", "Malformed input"
        FRAME_TOO_LARGE = "frame_too_large", "Frame too large"
        RATE_LIMITED = "rate_limited", "Message flood"
        OVERLOADED = "overloaded", "Server overloaded"
        BUSY = "busy", "All lines busy"
        SERVER_ERROR = "server_error", "Server error"
        PROCESS_DIED = "process_died", "Web process died"

    ENDED = (Status.COMPLETED, Status.FAILED)
    # Endings that say nothing about how a variant behaved: the machine failed or was full
    # (busy: the caller heard only the busy message), or the peer sent what no caller
    # sends (an attack). Rewarding them would blame a variant.
    UNREWARDED_REASONS = frozenset({
        EndReason.STALE, EndReason.SERVER_ERROR, EndReason.PROCESS_DIED, EndReason.OVERLOADED,
        EndReason.BUSY, EndReason.PROTOCOL_ERROR, EndReason.FRAME_TOO_LARGE,
        EndReason.RATE_LIMITED, EndReason.BLOCKED, EndReason.SUPERVISOR_HANGUP,
    })

    uuid = models.CharField(
        "channel UUID", max_length=64, unique=True, help_text="FreeSWITCH channel UUID / callSid."
    )
    direction = models.CharField(
        max_length=8, choices=Direction.choices, default=Direction.INBOUND
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.NEW, db_index=True
    )
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    status_detail = models.CharField(
        max_length=255, blank=True, help_text="Why a call failed, in words (never caller data)."
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    caller = models.ForeignKey(
        CallerNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    caller_hash = models.CharField(max_length=64, blank=True, db_index=True)
    caller_hash_key = models.CharField(max_length=16, blank=True)
    callee_hash = models.CharField(max_length=64, blank=True, db_index=True)
    callee_hash_key = models.CharField(max_length=16, blank=True)
    language = models.CharField(max_length=16, blank=True)
    # Placeholder until policy variants exist: the name of the variant that served the call.
    policy_variant = models.CharField(max_length=64, blank=True,
                                      help_text="The variant's name when the call started.")
    variant = models.ForeignKey(PolicyVariant, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="calls")
    dtmf = models.CharField(max_length=64, blank=True,
                            help_text="Digits the caller keyed in (e.g. a rating).")
    metadata = models.JSONField(
        default=dict, blank=True, help_text="Fork metadata without phone numbers."
    )
    recording = models.FileField(
        storage=recording_storage, upload_to="%Y/%m/%d/", blank=True, max_length=255
    )
    synthetic = models.BooleanField(default=False, help_text="Placed by TOM's own test calls.")
    # The web process carrying the call: a process that starts on this host ends the
    # calls its dead predecessors left open (calls.processes).
    host = models.CharField(max_length=255, blank=True,
                            help_text="Host name of the web process that took the call.")
    pid = models.PositiveIntegerField("PID", null=True, blank=True,
                                      help_text="Process id of that web process.")
    process_start = models.CharField(
        max_length=64, blank=True,
        help_text="Boot id and start time of that process, so a reused PID is told apart.")
    supervisor_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status", "started_at"], name="call_status_started")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="call_ends_after_start",
            ),
        ]
        # Hearing a caller's voice is more than reading the call's record (view_call).
        permissions = [("listen_recording", "Can listen to call recordings")]

    def __str__(self) -> str:
        return f"Call {self.uuid}"

    @property
    def is_ended(self) -> bool:
        return self.status in self.ENDED

    @property
    def rewardable(self) -> bool:
        """Whether the call's ending says something about its variant (see the policy)."""
        return not self.synthetic and self.end_reason not in self.UNREWARDED_REASONS

    @property
    def caller_phone_hash(self) -> PhoneHash | None:
        if not self.caller_hash:
            return None
        return PhoneHash(key_id=self.caller_hash_key, digest=self.caller_hash)


class CallTurn(models.Model):
    """One exchange: what the caller said, what the agent answered, and how long it took."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    caller_text = models.TextField(blank=True, help_text="What TOM understood (corrected).")
    caller_text_raw = models.TextField(
        blank=True, help_text="What speech recognition heard, before entity correction.")
    agent_text = models.TextField(blank=True, help_text="What the agent set out to say.")
    stt_ms = models.PositiveIntegerField("STT ms", null=True, blank=True)
    llm_first_token_ms = models.PositiveIntegerField("LLM first token ms", null=True, blank=True)
    tts_first_audio_ms = models.PositiveIntegerField("TTS first audio ms", null=True, blank=True)
    e2e_ms = models.PositiveIntegerField(
        "end-to-end ms", null=True, blank=True,
        help_text="Caller's end of speech to the first agent audio sent.",
    )
    barge_in = models.BooleanField(default=False, help_text="The caller interrupted this reply.")
    tools_ms = models.PositiveIntegerField(
        "tools ms", null=True, blank=True, help_text="Time spent in tool calls for this turn.")
    tool_calls = models.JSONField(
        default=list, blank=True,
        help_text="Tools the agent called for this turn: name, arguments, result, ms.")
    waterfall = models.JSONField(
        default=dict, blank=True,
        help_text="When each stage reached this turn, in ms after the caller stopped "
                  "speaking (stt_start, turn_start, stt_done, understood, routed, "
                  "llm_request, llm_first_text, first_clause, tts_first_audio, "
                  "first_audio_sent).")
    agent_audio_ms = models.PositiveIntegerField(null=True, blank=True)
    agent_audio_heard_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="How much of the agent's audio the caller heard."
    )

    class Meta:
        ordering = ["call", "index"]
        constraints = [
            models.UniqueConstraint(fields=["call", "index"], name="call_turn_unique_index"),
        ]

    def __str__(self) -> str:
        return f"Turn {self.index}"


class CallReward(models.Model):
    """The reward of one ended call and every component it was made of."""

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="reward")
    variant = models.ForeignKey(PolicyVariant, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="rewards")
    reward = models.FloatField()
    components = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"{self.call_id}: {self.reward:+.2f}"
