"""The TUI's Deployments view: rows with state, price, cost to date, idle time and
requests served; an idle warning above the table and in a notification; s stops, d
deletes after asking. Serverless rows, so no provider is called."""

from __future__ import annotations

from datetime import timedelta

from textual.widgets import DataTable, Static, TabbedContent

from app.database import get_engine
from app.deployments.service import utc_now
from app.tui.app import create_app
from app.tui.screens.confirm import ConfirmScreen
from db.engine import read_session, write_session
from db.models import Deployment
from tests.tui.helpers import settle


def add(**fields) -> int:
    with write_session(get_engine()) as session:
        row = Deployment(**fields)
        session.add(row)
        session.flush()
        return row.id


def state_of(deployment_id: int) -> str:
    with read_session(get_engine()) as session:
        return session.get(Deployment, deployment_id).state


async def test_the_view_lists_deployments_warns_of_idle_ones_and_stops_and_deletes():
    two_hours_ago = utc_now() - timedelta(hours=2)
    idle = add(
        provider="together",
        model="acme/idle-tune",
        kind="dedicated",
        state="running",
        hardware="1x_nvidia_h100_80gb_sxm",
        remote_id="endpoint-1",
        usd_per_hour=3.318,
        started_at=two_hours_ago,
        requests_served=12,
    )
    served = add(
        provider="openai",
        model="ft:gpt-4o-mini-2024-07-18:acme:s:1",
        kind="serverless",
        state="running",
        started_at=two_hours_ago,
    )
    app = create_app(start_poller=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("p")
        await settle(pilot)
        assert app.query_one(TabbedContent).active == "deployments"
        table = app.query_one("#deployments-table", DataTable)
        rows = {str(table.get_row(key)[0]): table.get_row(key) for key in table.rows}
        cells = [str(c) for c in rows[str(idle)]]
        assert cells[1:5] == ["acme/idle-tune", "together", "dedicated", "running"]
        assert cells[6] == "$3.32" and cells[9] == "12"
        assert cells[7] in ("$6.64", "$6.63") and cells[8] == "2 h 00 min"
        assert [str(c) for c in rows[str(served)]][6:8] == ["-", "-"]  # per token
        banner = str(app.query_one("#deployments-warnings", Static).render())
        assert f"deployment {idle} (acme/idle-tune on together)" in banner
        assert any("acme/idle-tune" in n.message for n in app._notifications)

        table.move_cursor(row=table.get_row_index(str(served)))
        await pilot.press("s")
        await settle(pilot)
        assert state_of(served) == "stopped"
        table.move_cursor(row=table.get_row_index(str(served)))
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert state_of(served) == "deleted" and state_of(idle) == "running"
