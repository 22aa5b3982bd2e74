"""Job tracking use-cases: launch, poll, query, cancel/pause/resume, import.

The CLI (`app.cli.jobs`) and the TUI (`app.tui.views.jobs`) are two faces over these.
"""
