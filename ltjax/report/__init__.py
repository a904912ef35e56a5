"""Reads workdirs (never trains): figures, tables and the report."""
