"""Persistence: SQLModel tables, the async engine and keyword-only data-access functions.

Only this package imports sqlmodel/sqlalchemy (DESIGN.md, "Dependency direction").
"""
