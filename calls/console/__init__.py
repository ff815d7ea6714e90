"""The supervisor console: live calls, the call page, recordings and a test call from the
browser, inside the admin's look (its header, navigation and permissions).

Built with htmx and server-sent events: the board and the call page follow the channel
layer's ``tom.console`` group (voice.live publishes there), so they work on Redis in
production and on the in-memory layer of the embedded default.
"""
