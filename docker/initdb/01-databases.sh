#!/bin/bash
# One PostgreSQL server, one database per service, each owned by a login role of its own that can reach nothing
# else (run once, when the data volume is empty). The superuser (POSTGRES_USER) is for administration only.
set -euo pipefail
for service in mlflow prefect optuna; do
  variable="${service^^}_DB_PASSWORD"
  password="${!variable:?set ${variable} in docker/.env}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
       -v name="$service" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
# and no service role reaches the administration databases
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v admin="$POSTGRES_DB" <<'SQL'
REVOKE ALL ON DATABASE :"admin" FROM PUBLIC;
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
SQL
