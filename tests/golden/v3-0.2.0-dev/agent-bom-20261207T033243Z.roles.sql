--
-- PostgreSQL database cluster dump
--

\restrict c6HIaIAI9BxReRtOXzPfnrHuOhsQVr75QbK6IsLCDQKpT3qVwvHNbz5EL4ZQrFO

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE agent_bom_app;
ALTER ROLE agent_bom_app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE agent_bom_owner;
ALTER ROLE agent_bom_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE agent_bom_readonly;
ALTER ROLE agent_bom_readonly WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- User Configurations
--


--
-- Role memberships
--

GRANT agent_bom_readonly TO agent_bom_app GRANTED BY postgres;






\unrestrict c6HIaIAI9BxReRtOXzPfnrHuOhsQVr75QbK6IsLCDQKpT3qVwvHNbz5EL4ZQrFO

--
-- PostgreSQL database cluster dump complete
--

