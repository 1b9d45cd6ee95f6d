"""The dispatcher: queued outbound messages go to the WhatsApp Cloud API, each at most once."""
