"""Test harness: tool paths, throwaway PostgreSQL clusters and a local S3 server.

Everything here drives real programs (PostgreSQL servers, ``moto_server``); the tools
are installed by ``scripts/bootstrap.sh`` and resolved by :mod:`tests.support.tools`.
"""
