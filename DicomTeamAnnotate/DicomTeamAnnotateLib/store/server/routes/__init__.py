"""One APIRouter per resource (MONAI Label's ``endpoints/`` shape), assembled by ``app.create_app``.

- ``project``: health, me, project settings, members
- ``cases``: cases, assignments, a case's image (GET and HEAD, with Range)
- ``states``: a case's workflow states, my worklist
- ``versions``: versions of a case (paged), latest, one version, its content
- ``uploads``: the resumable upload protocol (see ``server/uploads.py``)
- ``audit``: the append-only log (paged)
- ``common``: what the routers share: the bearer-token dependency, the member's service, fast JSON answers

Each module has ``router(context, deps) -> APIRouter``; `deps` (``common.Dependencies``)
gives the bearer-token dependency (``deps.member``) and the member's service (``deps.service``).
"""
