"""ftm's persistence: SQLModel tables, engine and session set-up, migrations, repository.

Never imports textual or app/ (a test checks it).
"""
