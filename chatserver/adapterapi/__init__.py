"""The adapter API: bots and custom channels connect with an adapter token (REST and ``/ws/adapter``).

``model`` holds the plain types, ``store`` the queries, ``service`` what adapters may do (bot replies,
buttons, handoff, channel injection) on top of :class:`~chatserver.chat.ChatService`.
"""
