"""Migration 0005 (traffic policies, shadow answers) on a database in use."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from db import migrate
from db.engine import make_engine, read_session, write_session
from db.models import Deployment, GatewayRequest, ShadowAnswer, TrafficPolicy, utcnow

BEFORE = "0004_deployments_gateway"
NEW_TABLES = {"traffic_policies", "shadow_answers"}


def test_upgrade_from_0004_keeps_the_data_and_downgrade_removes_only_the_new_tables(
    blank_database_url,
):
    engine = make_engine(blank_database_url)
    migrate.upgrade(engine, BEFORE)
    with engine.begin() as conn:  # 0004's columns: the models are at head
        conn.execute(
            sa.text(
                "INSERT INTO deployments (id, provider, model, kind, state, min_replicas,"
                " max_replicas, requests_served, created_at, updated_at) VALUES (7,"
                " 'together', 'm', 'dedicated', 'running', 1, 1, 0, :now, :now)"
            ),
            {"now": utcnow()},
        )
        conn.execute(
            sa.text(
                "INSERT INTO gateway_requests (request_id, created_at, route, status_code,"
                " deployment_id) VALUES ('kept', :now, 'primary', 200, 7)"
            ),
            {"now": utcnow()},
        )
    migrate.upgrade(engine)
    with read_session(engine) as s:  # the old row gains served_name, empty
        kept = s.exec(select(Deployment)).one()
        assert (kept.id, kept.model, kept.served_name) == (7, "m", None)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert NEW_TABLES <= set(sa.inspect(engine).get_table_names())
    with write_session(engine) as s:  # the new tables take rows with their defaults
        s.add(TrafficPolicy(task="routing"))
        s.add(
            ShadowAnswer(
                request_id="kept",
                task="routing",
                alias="production",
                candidate_provider="p",
                candidate_model="m",
                candidate_status=200,
                messages=[{"role": "user", "content": "hi"}],
            )
        )
    with read_session(engine) as s:
        p = s.exec(select(TrafficPolicy)).one()
        assert (p.alias, p.canary_alias, p.canary_percent, p.shadow, p.shadow_alias) == (
            "production",
            "staging",
            0.0,
            False,
            "staging",
        )
        assert s.exec(select(ShadowAnswer)).one().messages == [{"role": "user", "content": "hi"}]
        assert s.exec(select(GatewayRequest)).one().request_id == "kept"

    migrate.downgrade(engine, BEFORE)
    tables = set(sa.inspect(engine).get_table_names())
    assert not NEW_TABLES & tables and "gateway_requests" in tables
    assert "served_name" not in {c["name"] for c in sa.inspect(engine).get_columns("deployments")}
    with read_session(engine) as s:
        assert s.exec(select(GatewayRequest)).one().request_id == "kept"
    migrate.upgrade(engine)
    assert NEW_TABLES <= set(sa.inspect(engine).get_table_names())
