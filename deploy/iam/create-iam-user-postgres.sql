-- PostgreSQL on RDS or Aurora: a database user that logs in with IAM auth tokens.
-- Run as the master user (or a member of rds_superuser). Replace app_iam and orders with your own names.
-- A user in rds_iam can log in ONLY with a token: give the IAM login its own user, not the one whose password
-- Secrets Manager rotates.
CREATE USER app_iam;
GRANT rds_iam TO app_iam;
GRANT CONNECT ON DATABASE orders TO app_iam;
-- Then the privileges the service needs, for example:
-- GRANT USAGE ON SCHEMA public TO app_iam;
-- GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_iam;

-- RDS takes IAM logins over TLS only. To refuse unencrypted logins for every user, set rds.force_ssl = 1 in the
-- DB parameter group.
