-- MySQL or MariaDB on RDS (and Aurora MySQL): a database user that logs in with IAM auth tokens.
-- Run as the master user. Replace app_iam and orders with your own names.
-- The AWSAuthenticationPlugin checks the token with IAM: this user has no password of its own.
CREATE USER 'app_iam'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';
-- RDS takes IAM logins over TLS only; make it explicit for this user.
ALTER USER 'app_iam'@'%' REQUIRE SSL;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders.* TO 'app_iam'@'%';
