"""End-to-end tests: the real CLI, restore script and rendered CronJob against real PostgreSQL and S3 servers."""
