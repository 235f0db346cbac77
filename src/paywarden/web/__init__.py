"""The trusted surface: server-rendered pages (Jinja2, no JavaScript) where users sign in and
consent to mandates. Routes in :mod:`paywarden.web.routes`; shared page machinery in
:mod:`paywarden.web.pages`; constraint wording in :mod:`paywarden.web.wording`."""
