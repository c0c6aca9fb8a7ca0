"""Create the FAB auth manager's users from a YAML file; idempotent.

    python include/auth/create_users.py include/auth/users.yaml

Run after ``airflow db migrate`` (which also migrates FAB's ``ab_*`` tables: the provider
registers its DB manager), with ``AIRFLOW__CORE__AUTH_MANAGER`` set to FAB's auth manager and
the same ``[fab] config_file`` as the api-server. The file maps username -> role (Admin, Op,
User, Viewer), either ``name: Role`` or ``name: {role: Role, name: Full Name, email: ...}``.
Each user's password comes from ``ACME_USER_PASSWORD_<USERNAME>`` (uppercased, other characters
as ``_``); the script stops before touching the DB if one is unset, naming it.

Missing roles are created first (what the api-server does on its start). Missing users are
created with their password; existing ones get the file's role, name and email. A password is
only set on creation: an existing user's password is left alone (change it with
``airflow users reset-password``). Nothing is printed of a password.
"""

from __future__ import annotations

import logging
import os
import re
import sys

import yaml

ROLES = ("Admin", "Op", "User", "Viewer")
PREFIX = "ACME_USER_PASSWORD_"


def password_variable(username: str) -> str:
    return PREFIX + re.sub(r"[^A-Z0-9]", "_", username.upper())


def read_users(path: str) -> dict[str, dict[str, str]]:
    """username -> {role, first_name, last_name, email}; refuses unknown roles."""
    with open(path) as file:
        raw = yaml.safe_load(file) or {}
    users = {}
    for username, spec in raw.items():
        spec = {"role": spec} if isinstance(spec, str) else dict(spec or {})
        if spec.get("role") not in ROLES:
            raise SystemExit(f"{path}: user {username!r}: role {spec.get('role')!r} is not one of {', '.join(ROLES)}")
        first, _, last = str(spec.get("name") or username).partition(" ")
        email = spec.get("email") or f"{username}@acme.invalid"
        users[str(username)] = {"role": spec["role"], "first_name": first, "last_name": last, "email": email}
    return users


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit("usage: python create_users.py USERS_YAML")
    users = read_users(argv[0])
    if unset := [password_variable(u) for u in users if not os.environ.get(password_variable(u))]:
        raise SystemExit(f"ERROR: no password for {len(unset)} user(s): set {', '.join(unset)} (nothing was changed)")

    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from airflow.providers_manager import ProvidersManager

    ProvidersManager().initialize_providers_configuration()  # [fab] config_file and the other defaults
    # the security manager logs every permission it creates (hundreds of lines); this script says what changed
    logging.getLogger("airflow.providers.fab.auth_manager.security_manager.override").setLevel(logging.WARNING)
    changes = 0
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        if missing := [r for r in ROLES if sm.find_role(r) is None]:
            sm.sync_roles()  # Admin, Op, User, Viewer, Public with their permissions (as `airflow sync-perm`)
            print(f"created the roles {', '.join(missing)}")
            changes += 1
        for username, want in users.items():
            role = sm.find_role(want["role"])
            user = sm.find_user(username=username)
            if user is None:
                sm.add_user(username, want["first_name"], want["last_name"], want["email"], role,
                            password=os.environ[password_variable(username)])  # fmt: skip
                print(f"{username}: created, role {want['role']}")
                changes += 1
                continue
            have = {"role": ",".join(r.name for r in user.roles), **{k: getattr(user, k) for k in want if k != "role"}}
            if have == want:
                print(f"{username}: unchanged, role {want['role']}")
                continue
            user.roles = [role]
            user.first_name, user.last_name, user.email = want["first_name"], want["last_name"], want["email"]
            if not sm.update_user(user):
                raise SystemExit(f"ERROR: could not update {username} (see the log above)")
            diff = ", ".join(f"{k} {have[k]!r} -> {want[k]!r}" for k in want if have[k] != want[k])
            print(f"{username}: updated {diff}")
            changes += 1
    print(f"{changes} change(s)" if changes else "no changes: every user and role already as in the file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
