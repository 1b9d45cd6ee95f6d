"""The directory consumer: workspaces, business numbers and members, from admin commands."""
