"""The event contract of switchboard: every record that crosses Kafka is defined here.

One module per part of the domain (``whatsapp``, ``conversation``, ``directory``,
``operations``), the envelope every record carries, the codec every producer and consumer
uses, and the topic catalogue. Also what some records carry inside and every reader must
agree on: the flow language (``flow_language``) and which characters text typed by people
may hold (``text_rules``).
"""
