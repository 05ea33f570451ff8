"""The application layer: every front end (CLI, TUI, web API, agent tools) acts through here.

- ``core.app.jobs``: submit idea runs (the one submit path), list, show, cancel, retry, read logs
- ``core.app.agents``: launch, list (reconciled), stop, resume agents; read transcripts
- ``core.app.views``: leaderboard with referee columns, baselines, ideas, datasets, executors, GPUs
- ``core.app.seed_runs``: ``w2s run``'s follow-the-seeds logic (local processes or service jobs)

Front ends only parse input and render output; decisions live here or below.
"""
