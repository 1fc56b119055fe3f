"""What a host adds around the app: deploy-time settings, a status record per container, a
restart budget for failed loads, the status endpoint, the modules a memory snapshot holds.

Nothing here imports Modal: server/modal_app.py hands in Modal's objects (a `modal.Dict`,
`modal.experimental.stop_fetching_inputs`), and the tests hand in fakes.
"""
