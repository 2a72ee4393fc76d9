#!/bin/sh
# The local image's docker-entrypoint.sh: starts PostgreSQL or MariaDB configured by the environment variables the
# official images' entrypoints read (the ones the testkit uses), with the same meaning, so that one set of settings
# configures both image sources and CI, which has only this image, runs the settings the official path relies on.
#
#   docker-entrypoint.sh postgres [SERVER ARGS...]
#       POSTGRES_USER (default postgres) and POSTGRES_PASSWORD: the superuser made by initdb.
#       POSTGRES_INITDB_ARGS: more initdb arguments, as shell words. Without an --auth option initdb trusts every
#           login over the socket and from 127.0.0.1 and ::1, exactly as it does in the official image.
#       POSTGRES_HOST_AUTH_METHOD: the method of the `host all all all METHOD` line added at the end of pg_hba.conf
#           (so it covers only what initdb's lines do not); default: the server's password_encryption.
#       PGDATA (default /var/lib/postgresql/data); PGPORT, read by the server itself.
#   docker-entrypoint.sh mariadbd [SERVER ARGS...]
#       MARIADB_ROOT_PASSWORD: root's password, for root@localhost and root@MARIADB_ROOT_HOST (default %).
#   docker-entrypoint.sh OTHER...   runs OTHER as it is.
#
# Only an empty data directory is initialised; a restarted container keeps its data and accounts. A missing password
# stops the start, as in the official images (PostgreSQL: unless the method is trust).
set -eu

fail() {
    echo "docker-entrypoint.sh: $*" >&2
    exit 1
}

# run_as OWNER COMMAND...: runs COMMAND as OWNER, a system user whose group has the same name.
run_as() {
    owner=$1
    shift
    setpriv --reuid="$owner" --regid="$owner" --init-groups "$@"
}

postgres_main() {
    data=${PGDATA:-/var/lib/postgresql/data}
    install -d -o postgres -g postgres /run/postgresql
    if [ ! -s "$data/PG_VERSION" ]; then
        [ -n "${POSTGRES_PASSWORD:-}" ] || [ "${POSTGRES_HOST_AUTH_METHOD:-}" = trust ] ||
            fail "POSTGRES_PASSWORD is empty: set it (or POSTGRES_HOST_AUTH_METHOD=trust, which checks no password)"
        install -d -o postgres -g postgres -m 700 "$data"
        secret=$(mktemp)
        # initdb reads the first line; an empty line is an empty password.
        printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$secret"
        chown postgres "$secret"
        # POSTGRES_INITDB_ARGS is shell words: quotes in it group, as in the official image.
        eval "run_as postgres initdb -D \"\$data\" -U \"\${POSTGRES_USER:-postgres}\" --pwfile=\"\$secret\" \
            ${POSTGRES_INITDB_ARGS:-}" >&2
        rm -f "$secret"
        method=${POSTGRES_HOST_AUTH_METHOD:-$(run_as postgres postgres -D "$data" -C password_encryption "$@")}
        printf '\nhost all all all %s\n' "$method" >>"$data/pg_hba.conf"
    fi
    # Not through run_as: $! must be the server itself (setpriv execs it), not a subshell running the function.
    setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$data" "$@" &
    server=$!
    # `docker stop` sends SIGTERM, a "smart" shutdown that waits for every client to leave. The official image
    # declares STOPSIGNAL SIGINT (fast shutdown); this image serves three programs, so the signal is turned here.
    trap 'kill -INT "$server"' TERM
    wait "$server" || wait "$server"
}

# sql_literal TEXT: TEXT as a quoted MariaDB string (backslashes doubled for the default sql_mode).
sql_literal() {
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}

mariadbd_main() {
    install -d -o mysql -g mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        [ -n "${MARIADB_ROOT_PASSWORD:-}" ] || fail "MARIADB_ROOT_PASSWORD is empty: set it"
        # No test database, and with it no anonymous accounts, which would shadow 'user'@'%' for local clients.
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=normal \
            --skip-test-db >&2
        password=$(sql_literal "$MARIADB_ROOT_PASSWORD")
        root_host=$(sql_literal "${MARIADB_ROOT_HOST:-%}")
        setup=/run/mysqld/entrypoint-setup.sql
        {
            # root logs in with the password, from localhost and from MARIADB_ROOT_HOST only.
            echo "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
            echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');"
            echo "SET PASSWORD FOR root@localhost = PASSWORD($password);"
            if [ "${MARIADB_ROOT_HOST:-%}" != localhost ]; then
                echo "CREATE USER root@$root_host IDENTIFIED BY $password;"
                echo "GRANT ALL ON *.* TO root@$root_host WITH GRANT OPTION;"
            fi
        } >"$setup"
        chown mysql "$setup"
        set -- "$@" --init-file="$setup"
    fi
    exec mariadbd --user=mysql --datadir=/var/lib/mysql "$@"
}

case "${1:-}" in
postgres)
    shift
    postgres_main "$@"
    ;;
mariadbd)
    shift
    mariadbd_main "$@"
    ;;
*) exec "$@" ;;
esac
