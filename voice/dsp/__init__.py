"""Telephony DSP: G.711, resampling, framing. Pure, synchronous, bytes in and bytes out.

The ground floor of the voice path: numpy and the standard library only, never
Django, Channels or another app.
"""
