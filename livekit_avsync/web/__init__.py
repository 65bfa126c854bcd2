"""The browser viewer: our page (``page/``), livekit-client from npm installed into a cache on
first use (:mod:`.modules`), its loopback HTTP server with a token (:mod:`.server`), and headless
Chromium driven over the DevTools protocol (:mod:`.chromium`). Measurement in the page lives in
:mod:`livekit_avsync.measure.browser`."""
