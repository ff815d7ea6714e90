"""The supervisors' view of calls, turns and callers.

Call records are evidence: read-only except the supervisor's note. Searching by a
phone number hashes what was typed and redirects to a hash search, so the raw
number is never queried, never rendered back, and leaves no trace in later URLs.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import SEARCH_VAR
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.html import format_html

from calls import phone, selectors, services
from calls.admin_stale import close_stale_action
from calls.models import Call, CallerNumber, CallTurn
from calls.selectors import call_is_stale


class HashedPhoneSearchMixin:
    """Admin search where a phone number is looked up by its keyed hash only."""

    #: Hash columns searched for a typed number.
    phone_hash_fields: tuple[str, ...] = ()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        typed = request.GET.get(SEARCH_VAR, "")
        if typed and phone.looks_like_phone_number(typed):
            term = selectors.hash_search_term(raw=typed) or ""
            params = request.GET.copy()
            params[SEARCH_VAR] = term
            return HttpResponseRedirect(f"{request.path}?{params.urlencode()}")
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        digests = selectors.hash_search_digests(search_term.strip())
        if digests is None and phone.looks_like_phone_number(search_term):
            # Reached without the redirect (e.g. a form posting q): hash here instead.
            digests = (selectors.hash_search_digests(
                selectors.hash_search_term(raw=search_term) or "") or [])
        if digests is not None:
            query = Q()
            for field in self.phone_hash_fields:
                query |= Q(**{f"{field}__in": digests})
            return (queryset.filter(query) if digests else queryset.none()), False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


class CallTurnInline(admin.TabularInline):
    model = CallTurn
    extra = 0
    can_delete = False
    show_change_link = False
    fields = (
        "index", "started_at", "caller_text", "agent_text", "stt_ms", "llm_first_token_ms",
        "tts_first_audio_ms", "tools_ms", "e2e_ms", "stages", "barge_in", "heard",
        "tool_calls",
    )
    readonly_fields = fields

    @admin.display(description="stages (ms after the caller stopped)")
    def stages(self, turn: CallTurn) -> str:
        """The turn's waterfall in a line: where its time went."""
        marks = [("STT", "stt_done"), ("turn", "turn_start"), ("LLM", "llm_first_text"),
                 ("clause", "first_clause"), ("audio", "first_audio_sent")]
        parts = [f"{label} {turn.waterfall[key]}" for label, key in marks
                 if key in (turn.waterfall or {})]
        return " · ".join(parts) or "-"

    @admin.display(description="heard / spoken ms")
    def heard(self, turn: CallTurn) -> str:
        if turn.agent_audio_ms is None:
            return "-"
        heard = turn.agent_audio_ms if turn.agent_audio_heard_ms is None \
            else turn.agent_audio_heard_ms
        return f"{heard} / {turn.agent_audio_ms}"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Call)
class CallAdmin(HashedPhoneSearchMixin, admin.ModelAdmin):
    list_display = (
        "uuid", "status_badge", "started_at", "duration", "turn_count", "caller_short", "outcome",
        "language", "synthetic",
    )
    list_filter = ("status", "end_reason", "direction", "language", "synthetic")
    date_hierarchy = "started_at"
    search_fields = ("uuid",)
    phone_hash_fields = ("caller_hash", "callee_hash")
    list_select_related = ("caller",)
    list_per_page = 50
    show_full_result_count = False  # a count(*) per page view is slow on a big call table
    inlines = (CallTurnInline,)
    actions = ("close_stale",)

    class Media:
        css = {"all": ("console/console.css",)}  # the "stale" badge, in the admin's colours
    fieldsets = (
        (None, {"fields": ("uuid", "direction", "status", "end_reason", "status_detail",
                           "synthetic")}),
        ("Timing", {"fields": ("started_at", "answered_at", "ended_at", "duration")}),
        ("Parties", {"fields": ("caller", "caller_short", "callee_short", "language",
                                "policy_variant")}),
        ("Data", {"fields": ("metadata", "recording")}),
        # Which web process carried the call: the orphan reaper's evidence after a crash.
        ("Process", {"fields": ("host", "pid", "process_start"), "classes": ("collapse",)}),
        ("Review", {"fields": ("supervisor_note",)}),
    )
    readonly_fields = (
        "uuid", "direction", "status", "end_reason", "status_detail", "synthetic", "started_at",
        "answered_at", "ended_at", "duration", "caller", "caller_short", "callee_short",
        "language", "policy_variant", "metadata", "recording", "host", "pid", "process_start",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Call]:
        return selectors.call_list_with_turn_counts()

    @admin.display(description="status", ordering="status")
    def status_badge(self, call: Call) -> str:
        """The status, and "stale" for an open call nothing carries any more."""
        if call_is_stale(call=call, now=timezone.now()):
            return format_html('{} <span class="console-badge console-badge-stale" '
                               'title="{}">stale</span>', call.get_status_display(),
                               "No web process carries this call: close it with a reason.")
        return call.get_status_display()

    @admin.action(description="Close stale calls…", permissions=["change"])
    def close_stale(self, request: HttpRequest, queryset: QuerySet[Call]) -> HttpResponse | None:
        return close_stale_action(self, request, queryset)

    @admin.display(description="turns", ordering="turn_count")
    def turn_count(self, call: Call) -> int:
        return int(getattr(call, "turn_count", 0))

    @admin.display(description="caller")
    def caller_short(self, call: Call) -> str:
        return call.caller_phone_hash.short if call.caller_phone_hash else "withheld"

    @admin.display(description="callee")
    def callee_short(self, call: Call) -> str:
        if not call.callee_hash:
            return "-"
        return phone.PhoneHash(key_id=call.callee_hash_key, digest=call.callee_hash).short

    @admin.display(description="outcome", ordering="end_reason")
    def outcome(self, call: Call) -> str:
        if not call.is_ended:
            return "in progress" if call.status == Call.Status.ACTIVE else "ringing"
        label = call.get_end_reason_display() or call.get_status_display()
        if call.status == Call.Status.FAILED:
            return format_html('<span style="color:#ba2121">✗ {}</span>', label)
        return label

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # calls are created by FreeSWITCH, never by hand


@admin.register(CallerNumber)
class CallerNumberAdmin(HashedPhoneSearchMixin, admin.ModelAdmin):
    list_display = ("__str__", "key_id", "first_seen_at", "last_seen_at", "call_count", "blocked")
    list_filter = ("blocked", "key_id")
    search_fields = ("digest",)  # free text matches hashes only; numbers are hashed first
    phone_hash_fields = ("digest",)
    date_hierarchy = "last_seen_at"
    fields = ("key_id", "digest", "first_seen_at", "last_seen_at", "call_count", "blocked",
              "blocked_reason")
    readonly_fields = ("key_id", "digest", "first_seen_at", "last_seen_at", "call_count")
    actions = ("block", "unblock")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Block selected callers", permissions=["change"])
    def block(self, request: HttpRequest, queryset: QuerySet[CallerNumber]) -> None:
        for caller_number in queryset:
            services.caller_number_block(caller_number=caller_number, blocked=True,
                                         reason="blocked by a supervisor")
        self.message_user(request, f"Blocked {queryset.count()} caller(s).", messages.SUCCESS)

    @admin.action(description="Unblock selected callers", permissions=["change"])
    def unblock(self, request: HttpRequest, queryset: QuerySet[CallerNumber]) -> None:
        for caller_number in queryset:
            services.caller_number_block(caller_number=caller_number, blocked=False)
        self.message_user(request, f"Unblocked {queryset.count()} caller(s).", messages.SUCCESS)

from calls import admin_policy  # noqa: E402,F401  (registers the policy admin)
