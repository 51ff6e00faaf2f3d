"""Nothing of the dashboard's own to administer (the audit log is the engine's: workflows.admin)."""
