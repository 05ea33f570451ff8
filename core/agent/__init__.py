"""The research agent: a Claude loop with tools, budgets, a resumable transcript, run as a job.

Front ends import what they use from the module that defines it: :mod:`core.agent.launcher`
(launch, list, find, stop, resume an agent; also the job's entry point, ``python -m
core.agent.launcher``) and :mod:`core.agent.transcript` (read and format transcripts). This package
re-exports nothing, so running the launcher as a script never imports it twice.
"""
