/* dashcam web UI: maps (Leaflet) and the player <-> route sync. Pages work without this file
   except the maps and the moving marker. Data comes from <script type="application/json" id="map-data">. */
(function () {
  'use strict';
  var body = document.body;

  function readData() {
    var el = document.getElementById('map-data');
    return el ? JSON.parse(el.textContent) : null;
  }

  function baseMap(el) {
    var map = L.map(el, { zoomControl: true, attributionControl: true });
    var tiles = L.tileLayer(body.dataset.tiles, { maxZoom: 19, attribution: body.dataset.attribution });
    var failed = 0;
    tiles.on('tileerror', function () {
      failed += 1;
      if (failed === 1) {  // no internet / tile server down: routes and markers stay on a plain background
        el.classList.add('tiles-off');
        var note = L.control({ position: 'bottomleft' });
        note.onAdd = function () { var d = L.DomUtil.create('div', 'tiles-note'); d.textContent = 'map tiles unavailable'; return d; };
        note.addTo(map);
      }
    });
    tiles.on('tileload', function () { el.classList.add('tiles-on'); });
    tiles.addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    return map;
  }

  function fit(map, latlngs) {
    if (!latlngs.length) { map.setView([0, 0], 2); return; }
    var b = L.latLngBounds(latlngs);
    if (b.getNorthEast().distanceTo(b.getSouthWest()) < 30) map.setView(b.getCenter(), 18);
    else map.fitBounds(b, { padding: [24, 24], maxZoom: 18 });
  }

  function link(href, text, cls) {
    var a = document.createElement('a'); a.href = href; a.textContent = text; if (cls) a.className = cls; return a;
  }

  function popupFor(p) {
    var d = document.createElement('div'); d.className = 'pop';
    d.appendChild(link(p.plate_url || ('/plates/' + p.plate), p.plate, 'plate'));
    var w = document.createElement('div'); w.textContent = p.when; d.appendChild(w);
    d.appendChild(link(p.url, 'watch \u25B6'));
    return d;
  }

  function nearestIndex(points, latlng) {  // points: [[t, lat, lon], ...]
    var best = -1, bd = Infinity;
    for (var i = 0; i < points.length; i++) {
      var dl = points[i][1] - latlng.lat, dn = (points[i][2] - latlng.lng) * Math.cos(latlng.lat * Math.PI / 180);
      var dd = dl * dl + dn * dn;
      if (dd < bd) { bd = dd; best = i; }
    }
    return best;
  }

  function positionAt(points, t) {  // linear interpolation along the route by video seconds
    if (!points.length) return null;
    if (t <= points[0][0]) return [points[0][1], points[0][2]];
    for (var i = 1; i < points.length; i++) {
      if (points[i][0] >= t) {
        var a = points[i - 1], b = points[i], f = (t - a[0]) / ((b[0] - a[0]) || 1);
        return [a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
      }
    }
    var l = points[points.length - 1]; return [l[1], l[2]];
  }

  function drivePage(el, data) {
    var map = baseMap(el), all = [];
    var player = document.getElementById('player');
    function seek(t) {
      if (!player) return;
      player.currentTime = Math.max(0, Math.min(t, (player.duration || data.duration) - 0.05));
      var p = player.play(); if (p && p.catch) p.catch(function () {});
    }
    data.others.forEach(function (o) {
      var ll = o.points.map(function (p) { return [p[1], p[2]]; }); all = all.concat(ll);
      var line = L.polyline(ll, { className: 'route-other', color: '#8a94a6', weight: 4, dashArray: '6 6' }).addTo(map);
      line.on('click', function (e) { var i = nearestIndex(o.points, e.latlng); window.location = o.url + '?t=' + o.points[i][0].toFixed(2); });
      line.bindTooltip('another segment of this drive: click to open');
    });
    var cur = data.route.map(function (p) { return [p[1], p[2]]; }); all = all.concat(cur);
    if (cur.length) {
      var route = L.polyline(cur, { className: 'route-current', color: '#1463ff', weight: 6 }).addTo(map);
      route.on('click', function (e) { seek(data.route[nearestIndex(data.route, e.latlng)][0]); });
      route.bindTooltip('click to watch from here');
    }
    data.events.forEach(function (ev) {
      if (ev.lat === null || ev.lon === null) return;
      all.push([ev.lat, ev.lon]);
      var m = L.circleMarker([ev.lat, ev.lon], { className: 'ev-marker' + (ev.here ? ' here' : ''), radius: 7, color: '#111', weight: 2, fillColor: '#ffcc00', fillOpacity: 1 }).addTo(map);
      m.bindTooltip(ev.plate, { className: 'plate-tip' });
      m.on('click', function () { if (ev.here) seek(ev.pts); else window.location = ev.url; });
    });
    var pos = null;
    if (cur.length) {
      pos = L.circleMarker(cur[0], { className: 'pos-marker', radius: 8, color: '#fff', weight: 3, fillColor: '#e0245e', fillOpacity: 1 }).addTo(map);
    }
    fit(map, all);
    el.dataset.ready = '1';
    window.dashcam = { map: map, data: data, position: function () { return pos && pos.getLatLng(); } };  // for tests / the console

    var cursor = document.getElementById('speed-cursor');
    var svg = document.querySelector('svg.speed');
    var chans = document.querySelectorAll('a[data-keep-time]');
    var items = document.querySelectorAll('.event [data-seek]');
    function update() {
      var t = player.currentTime;
      if (pos) { var ll = positionAt(data.route, t); if (ll) pos.setLatLng(ll); }
      if (cursor && svg) {
        var x = +svg.dataset.x0 + (+svg.dataset.w) * Math.min(t / (+svg.dataset.duration), 1);
        cursor.setAttribute('x1', x); cursor.setAttribute('x2', x);
      }
      chans.forEach(function (a) { var u = new URL(a.href, location.href); u.searchParams.set('t', t.toFixed(2)); a.href = u.pathname + u.search; });
      items.forEach(function (a) { a.parentNode.classList.toggle('now', Math.abs(+a.dataset.seek - t) < 1.0); });
      el.dataset.t = t.toFixed(3);
    }
    if (player) {
      player.addEventListener('timeupdate', update);
      player.addEventListener('seeked', update);
      player.addEventListener('loadedmetadata', function () {
        var s = +player.dataset.start || 0;
        if (s > 0 && Math.abs(player.currentTime - s) > 0.3) player.currentTime = s;
        update();
      });
    }
    items.forEach(function (a) {
      a.addEventListener('click', function (e) { e.preventDefault(); seek(+a.dataset.seek); });
    });
    if (svg) svg.addEventListener('click', function (e) {
      var r = svg.getBoundingClientRect(), vx = (e.clientX - r.left) / r.width * svg.viewBox.baseVal.width;
      seek(Math.max(0, (vx - svg.dataset.x0) / svg.dataset.w) * svg.dataset.duration);
    });
  }

  function pointsPage(el, data, cluster) {
    var map = baseMap(el);
    var layer = cluster && L.markerClusterGroup ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 50 }) : L.featureGroup();
    var ll = [];
    data.points.forEach(function (p) {
      ll.push([p.lat, p.lon]);
      var m = L.marker([p.lat, p.lon], { icon: L.divIcon({ className: 'pin', html: '', iconSize: [16, 16] }), title: p.plate });
      m.bindPopup(popupFor(p));
      layer.addLayer(m);
    });
    layer.addTo(map);
    fit(map, ll);
    el.dataset.ready = '1';
    window.dashcam = { map: map, data: data, layer: layer };
  }

  var el = document.getElementById('map');
  if (el && window.L) {
    var data = readData();
    if (el.dataset.kind === 'drive') drivePage(el, data);
    else if (el.dataset.kind === 'points') pointsPage(el, data, false);
    else if (el.dataset.kind === 'cluster') pointsPage(el, data, true);
  }
})();
