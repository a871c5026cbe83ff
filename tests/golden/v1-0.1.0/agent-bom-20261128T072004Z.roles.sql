--
-- PostgreSQL database cluster dump
--

\restrict H6jcPnXHihmU3snEMCKdO4kFblMDi917Eh5Up6vgPnGBiPCuAMIlZq20PXgIpY4

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






\unrestrict H6jcPnXHihmU3snEMCKdO4kFblMDi917Eh5Up6vgPnGBiPCuAMIlZq20PXgIpY4

--
-- PostgreSQL database cluster dump complete
--

