"""Users, passwords and sessions on real SQLite and PostgreSQL (no web server needed)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, insert, select, update

from auth.passwords import PasswordPolicyError, verify_password
from auth.sessions import end_session, load_session, start_session
from auth.users import (
    UserError,
    add_user,
    get_user_by_email,
    remove_user,
    set_active,
    set_password,
    set_role,
    set_scope,
    user_scope,
)
from queries import schema
from queries.scope import Scope

ORG = [("ACME", "Acme", "company", None), ("R1", "North", "region", "ACME"),
       ("R2", "South", "region", "ACME"), ("S1", "Leeds", "store", "R1"),
       ("S2", "York", "store", "R1"), ("S3", "Brighton", "store", "R2")]


@pytest.fixture
def org(engine):
    with engine.begin() as conn:
        conn.execute(insert(schema.org_unit), [
            {"id": i, "name": n, "kind": k, "parent_id": p, "source": "test",
             "loaded_at": dt.datetime(2026, 1, 1)} for i, n, k, p in ORG])
    return engine


def test_passwords_are_stored_as_argon2_hashes_only(org) -> None:
    with org.begin() as conn:
        add_user(conn, email="Ada@Example.com", role="executive", password="correct horse 1")
        row = conn.execute(select(schema.app_user)).one()
    assert row.email == "ada@example.com"
    assert row.password_hash.startswith("$argon2id$")
    assert "correct horse" not in row.password_hash
    assert verify_password(row.password_hash, "correct horse 1")
    assert not verify_password(row.password_hash, "correct horse 2")
    assert not verify_password(None, "anything at all")
    # OWASP's argon2id parameters, written into the hash itself.
    assert row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_hashes_made_with_other_parameters_still_verify() -> None:
    from argon2 import PasswordHasher

    # argon2-cffi's defaults (RFC 9106: 64 MiB, three passes, four lanes), which accounts
    # made before the change carry.
    older = PasswordHasher().hash("correct horse 1")
    assert "$m=65536,t=3,p=4$" in older
    assert verify_password(older, "correct horse 1")
    assert not verify_password(older, "correct horse 2")


def test_weak_passwords_and_bad_users_are_refused(org) -> None:
    with org.begin() as conn:
        with pytest.raises(PasswordPolicyError, match="at least 10"):
            add_user(conn, email="a@example.com", role="admin", password="short")
        with pytest.raises(UserError, match="needs a scope"):
            add_user(conn, email="b@example.com", role="manager")
        with pytest.raises(UserError, match=r"unknown org unit\(s\) \['NOPE'\]"):
            add_user(conn, email="c@example.com", role="manager", scope="NOPE")
        with pytest.raises(UserError, match="managers only"):
            add_user(conn, email="d@example.com", role="executive", scope="R1")
        with pytest.raises(UserError, match="not an email"):
            add_user(conn, email="not-an-email", role="executive")
        with pytest.raises(UserError, match="line breaks"):
            add_user(conn, email="e@example.com", role="executive", name="Eve\r\nBcc: x")
        add_user(conn, email="f@example.com", role="executive")
        with pytest.raises(UserError, match="exists already"):
            add_user(conn, email="F@example.com", role="admin")


def test_scope_follows_role_changes_and_fails_closed(org) -> None:
    with org.begin() as conn:
        user = add_user(conn, email="m@example.com", role="manager", scope=["S1", "R2"])
        assert user.scope == Scope(("R2", "S1"))
        assert user_scope(conn, user.id) == Scope(("R2", "S1"))
        user = set_scope(conn, user.id, "S2")
        assert user_scope(conn, user.id) == Scope(("S2",))
        user = set_role(conn, user.id, "executive")
        assert user.scope is None and user_scope(conn, user.id) is None
        user = set_role(conn, user.id, "manager", ["R1"])
        # A scope whose unit disappeared must not widen to "everything": it fails.
        conn.execute(update(schema.app_user).where(schema.app_user.c.id == user.id)
                     .values(scope="GONE"))
        with pytest.raises(UserError, match="cannot be resolved"):
            user_scope(conn, user.id)
        set_active(conn, user.id, False)
        with pytest.raises(UserError, match="disabled"):
            user_scope(conn, user.id)
        conn.execute(delete(schema.app_user).where(schema.app_user.c.id == user.id))
        with pytest.raises(UserError, match="does not exist"):
            user_scope(conn, user.id)


def test_the_last_admin_cannot_be_removed(org) -> None:
    with org.begin() as conn:
        add_user(conn, email="root@example.com", role="admin", password="admin-password-1")
        with pytest.raises(UserError, match="last admin"):
            remove_user(conn, "root@example.com")
        add_user(conn, email="second@example.com", role="admin")
        remove_user(conn, "root@example.com")
        assert get_user_by_email(conn, "root@example.com") is None


def test_sessions_end_on_expiry_idleness_sign_out_and_password_change(org) -> None:
    s = schema.user_session
    with org.begin() as conn:
        user = add_user(conn, email="s@example.com", role="executive",
                        password="session-pass-1")
        token, _live = start_session(conn, user, hours=12)
        assert load_session(conn, token, idle_minutes=60).user.email == "s@example.com"
        assert load_session(conn, token + "x", idle_minutes=60) is None
        # The cookie's token is not what the table keeps.
        assert conn.execute(select(s.c.id)).scalar_one() != token
        # Idle for 61 minutes.
        conn.execute(update(s).values(last_seen_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)
                                      - dt.timedelta(minutes=61)))
        assert load_session(conn, token, idle_minutes=60) is None
        # Past its absolute expiry.
        token, _ = start_session(conn, user, hours=12)
        conn.execute(update(s).where(s.c.id == load_session(conn, token, idle_minutes=60).id)
                     .values(expires_at=dt.datetime(2000, 1, 1)))
        assert load_session(conn, token, idle_minutes=60) is None
        # Signed out.
        token, _ = start_session(conn, user, hours=12)
        assert end_session(conn, token)
        assert load_session(conn, token, idle_minutes=60) is None
        # A password reset ends every session; so does disabling the user.
        token, _ = start_session(conn, user, hours=12)
        set_password(conn, user.id, "another-pass-2")
        assert load_session(conn, token, idle_minutes=60) is None
        token, _ = start_session(conn, user, hours=12)
        set_active(conn, user.id, False)
        assert load_session(conn, token, idle_minutes=60) is None
