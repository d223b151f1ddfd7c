// Rouse web UI: the little that needs a script. Every page reads fine
// without it; this adds the viewer's local time next to each UTC time and
// refreshes the alert list in place (same URL, so the filter is kept).
'use strict';
(function () {
  function localTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      if (t.querySelector('.local')) return;
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d)) return;
      var s = document.createElement('span');
      s.className = 'local';
      s.textContent = d.toLocaleString(undefined, {
        weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short'
      }) + ' (your time)';
      t.appendChild(s);
    });
  }
  function refresh(list) {
    var every = parseInt(list.getAttribute('data-refresh'), 10);
    if (!every) return;
    var note = document.getElementById('refresh-note');
    if (note) note.textContent = 'Refreshes every ' + every + ' s.';
    setInterval(function () {
      var url = new URL(location.href);
      url.searchParams.set('fragment', '1');
      fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (r) {
          // A redirect to the login page means the session ended: show it.
          if (r.redirected || !r.ok) { location.reload(); return null; }
          return r.text();
        })
        .then(function (html) {
          if (html === null) return;
          list.innerHTML = html;
          localTimes(list);
        })
        .catch(function () { /* offline for a moment: try again next tick */ });
    }, every * 1000);
  }
  document.addEventListener('DOMContentLoaded', function () {
    localTimes(document);
    var list = document.getElementById('alert-list');
    if (list) refresh(list);
  });
})();
