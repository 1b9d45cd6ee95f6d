"""The WhatsApp sandbox: a development stand-in for Meta, served by the gateway at /sandbox.

Only mounted when ``SWITCHBOARD_SANDBOX=1``. The dispatcher's real code path sends to its
Graph API stand-in (``/sandbox/graph/{version}/{phone_number_id}/messages``); a person plays
customers on the phone-like page (``/sandbox``); what the customers write, and the statuses
of what they receive, reach switchboard as signed webhooks through the real
``/webhooks/whatsapp`` route. Everything behind that is the real pipeline.
"""
