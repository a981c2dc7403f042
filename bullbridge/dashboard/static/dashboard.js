// bullbridge dashboard: optional auto-refresh and confirmation of actions. No dependencies.
'use strict';
(function () {
  var KEY = 'bullbridge.autorefresh';
  var box = document.getElementById('autorefresh');
  var timer = null;
  function arm() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (box && box.checked) { timer = setTimeout(function () { window.location.reload(); }, 5000); }
  }
  if (box) {
    box.checked = window.localStorage.getItem(KEY) === '1';
    box.addEventListener('change', function () {
      window.localStorage.setItem(KEY, box.checked ? '1' : '0');
      arm();
    });
    arm();
  }
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.getAttribute('data-confirm'))) { event.preventDefault(); }
    });
  });
})();
