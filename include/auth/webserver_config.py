"""Flask-AppBuilder settings of the FAB auth manager (compose and Helm; ``make up`` uses SimpleAuthManager).

Read by the api-server and by ``create_users.py`` from ``[fab] config_file``
(``AIRFLOW__FAB__CONFIG_FILE``; default ``$AIRFLOW_HOME/webserver_config.py``).
Users sign in with a username and password stored (hashed) in the metadata DB;
``create_users.py`` creates them from ``users.yaml``. See docs/auth.md.
"""

from flask_appbuilder.const import AUTH_DB

AUTH_TYPE = AUTH_DB
# No anonymous access: every request needs a signed-in user or a bearer token. (AUTH_ROLE_PUBLIC unset;
# ``[fab] auth_role_public``, which would override it, must stay empty too.)
AUTH_ROLE_PUBLIC = None
# Nobody registers themselves: users come from users.yaml (or an Admin adds them).
AUTH_USER_REGISTRATION = False
# Flask-WTF CSRF protection of the FAB forms (sign-in, user admin).
WTF_CSRF_ENABLED = True
