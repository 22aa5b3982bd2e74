"""Migration 0004 (deployments, gateway keys, request log) on a database in use."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, select

from db import migrate
from db.engine import make_engine, read_session, write_session
from db.models import GatewayKey, Job

BEFORE = "0003_throughput_world_size_flops_facts"
NEW_TABLES = {"deployments", "gateway_keys", "gateway_requests"}


def test_upgrade_from_0003_keeps_the_data_and_downgrade_removes_only_the_new_tables(
    blank_database_url,
):
    engine = make_engine(blank_database_url)
    migrate.upgrade(engine, BEFORE)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO jobs (uid, name, provider, base_model, method, status, simulated, "
                "stalled, created_at, updated_at) VALUES ('u1', 'kept', 'openai', 'm', "
                "'supervised', 'succeeded', false, false, '2026-11-30 10:00:00', '2026-11-30 10:00:00')"
            )
        )
    migrate.upgrade(engine, "0004_deployments_gateway")
    assert migrate.current_revision(engine) == "0004_deployments_gateway"
    assert NEW_TABLES <= set(sa.inspect(engine).get_table_names())
    with read_session(engine) as s:
        assert [j.name for j in s.exec(select(Job))] == ["kept"]
    with engine.begin() as conn:  # the new tables take rows with their defaults
        # (plain SQL: the models are at head, which has columns 0004 lacks)
        conn.execute(
            sa.text(
                "INSERT INTO deployments (provider, model, kind, state, min_replicas,"
                " max_replicas, requests_served, created_at, updated_at) VALUES ('together',"
                " 'm', 'dedicated', 'pending', 1, 1, 0, '2026-11-30', '2026-11-30')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO gateway_requests (request_id, created_at, route, status_code,"
                " deployment_id) VALUES ('r1', '2026-11-30', 'primary', 200, 1)"
            )
        )
    with engine.connect() as conn:
        d = conn.execute(sa.text("SELECT state, min_replicas FROM deployments")).one()
        assert tuple(d) == ("pending", 1)
        assert conn.execute(sa.text("SELECT route FROM gateway_requests")).scalar() == "primary"

    migrate.downgrade(engine, BEFORE)
    tables = set(sa.inspect(engine).get_table_names())
    assert not NEW_TABLES & tables
    with read_session(engine) as s:
        assert [j.name for j in s.exec(select(Job))] == ["kept"]
    migrate.upgrade(engine)  # and up again, from the downgraded state
    assert NEW_TABLES <= set(sa.inspect(engine).get_table_names())


@pytest.mark.parametrize("built_by", ["migrations", "models"])
def test_a_name_is_unique_among_live_keys_only(blank_database_url, built_by):
    """The partial unique index: two live keys cannot share a name, a revoked one can.
    Built by the migrations and by the models alike (autogenerate's comparison does not
    look at an index's WHERE, so this is what keeps the two definitions the same)."""
    engine = make_engine(blank_database_url)
    if built_by == "migrations":
        migrate.upgrade(engine)
    else:
        SQLModel.metadata.create_all(engine)
    with write_session(engine) as s:
        s.add(GatewayKey(name="app", key_hash="a", prefix="p", revoked_at=sa.func.now()))
        s.add(GatewayKey(name="app", key_hash="b", prefix="p"))
    try:
        with write_session(engine) as s:
            s.add(GatewayKey(name="app", key_hash="c", prefix="p"))
    except sa.exc.IntegrityError:
        return
    raise AssertionError("a second live key named 'app' was accepted")


def test_the_request_log_is_indexed_for_per_alias_per_month_queries(blank_database_url):
    engine = make_engine(blank_database_url)
    migrate.upgrade(engine)
    query = (
        "SELECT count(*), sum(cost_usd) FROM gateway_requests "
        "WHERE task = 'routing' AND alias = 'production' "
        "AND created_at >= '2026-12-01' AND created_at < '2027-01-01'"
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + query)
        else:  # an empty table is scanned whatever its indexes: ask what else it could do
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + query)
        plan = " ".join(str(row[-1]) for row in rows)
    assert "ix_gateway_requests_task_alias_created_at" in plan, plan
