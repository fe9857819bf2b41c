"""Checking Dialback the way an attacker would: tenant isolation over every route, and schemathesis.

``world`` starts the real services (deploy/local/pipeline.py) with two tenants and
seeds tenant A; ``principals`` holds who may ask and what each must get, per route
class, as data; ``probe`` sends every route of every service's OpenAPI as each
principal; ``fuzz`` runs schemathesis against the same running services.
bench/security.py prints the figures; tests/security runs both, bounded.
"""
