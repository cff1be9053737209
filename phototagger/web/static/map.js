// The Map page: the library's photos as pins on a Leaflet map over the world's outline, drawn
// from the vendored world-atlas file so that it needs no internet; online tiles replace the
// outline only once one of them has loaded.
"use strict";

function pinLabel(pin, kind) {
  const label = document.createElement("span");
  const photos = `${pin.count} photo${pin.count === 1 ? "" : "s"}`;
  label.textContent = kind === "landmark" ? `${pin.name}: ${photos}`
    : `${photos} placed from the library's GPS, ${pin.name}`;
  return label;
}

function addPins(map, pins, kind, layer) {
  for (const pin of pins) {
    const options = { title: pinLabel(pin, kind).textContent, alt: pin.name, riseOnHover: true };
    if (kind === "estimate") {
      options.icon = L.divIcon({
        className: "pin-estimate", html: String(pin.count), iconSize: [30, 30],
      });
    }
    const marker = L.marker([pin.latitude, pin.longitude], options);
    marker.bindTooltip(pinLabel(pin, kind));
    marker.on("click", () => { window.location.href = pin.url; });
    marker.on("keypress", (event) => {
      if (event.originalEvent.key === "Enter") window.location.href = pin.url;
    });
    layer.addLayer(marker);
  }
}

// world-atlas's rings are drawn for a globe: a few cross the antimeridian (the next point
// 360 degrees away) and Antarctica's goes around the South Pole, which on a flat map would be
// lines across the world. Each ring is made continuous (what lies across 180 degrees is drawn
// past it, the ring kept centred on this world), and one that goes around a pole is closed
// along the pole.
function flatRing(ring) {
  const flat = [];
  let shift = 0;
  for (const [longitude, latitude] of ring) {
    if (flat.length) {
      const step = longitude + shift - flat[flat.length - 1][0];
      if (step > 180) shift -= 360;
      else if (step < -180) shift += 360;
    }
    flat.push([longitude + shift, latitude]);
  }
  // Continuous from its first point, a ring may now lie a world away: bring it back.
  const longitudes = flat.map((point) => point[0]);
  const back = 360 * Math.round((Math.min(...longitudes) + Math.max(...longitudes)) / 720);
  for (const point of flat) point[0] -= back;
  const first = flat[0];
  const last = flat[flat.length - 1];
  if (Math.abs(last[0] - first[0]) > 180) {
    const pole = flat.reduce((sum, point) => sum + point[1], 0) < 0 ? -90 : 90;
    flat.push([last[0], pole], [first[0], pole], first);
  }
  return flat;
}

function flatGeometry(geometry) {
  if (geometry.type === "Polygon") {
    return { ...geometry, coordinates: geometry.coordinates.map(flatRing) };
  }
  if (geometry.type === "MultiPolygon") {
    return { ...geometry, coordinates: geometry.coordinates.map((rings) => rings.map(flatRing)) };
  }
  return geometry;
}

function drawOutline(map, url, state) {
  return fetch(url)
    .then((response) => {
      if (!response.ok) throw new Error(`the outline answered ${response.status}`);
      return response.json();
    })
    .then((topology) => {
      if (state.tiles) return;  // online tiles came first: they show the land already
      const land = topojson.feature(topology, topology.objects.land);
      const features = land.type === "FeatureCollection" ? land.features : [land];
      const flat = features.map((f) => ({ ...f, geometry: flatGeometry(f.geometry) }));
      state.outline = L.geoJSON(flat, {
        interactive: false,
        style: { className: "world-outline", color: "#7d8ca3", weight: 1,
                 fillColor: "#eef1e6", fillOpacity: 1 },
      }).addTo(map);
      state.outline.bringToBack();
    });
}

function tryTiles(map, element, state) {
  // Only where the browser reaches the tile server: one tile is fetched first, and the
  // layer is added (and the outline taken away) only once it has loaded.
  const template = element.dataset.tiles;
  if (!template) return;
  const probe = new Image();
  probe.referrerPolicy = "strict-origin";
  probe.addEventListener("load", () => {
    state.tiles = L.tileLayer(template, {
      maxZoom: 19, referrerPolicy: "strict-origin",
      attribution: element.dataset.tilesAttribution,
    }).addTo(map);
    if (state.outline) state.outline.remove();
    element.dataset.tilesState = "shown";
  });
  probe.src = template.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0");
}

document.addEventListener("DOMContentLoaded", () => {
  const element = document.getElementById("map");
  if (!element || !window.L || !window.topojson) return;
  const pins = JSON.parse(document.getElementById("map-pins").textContent);
  const map = L.map(element, { worldCopyJump: true, minZoom: 1 }).setView([20, 0], 2);
  map.attributionControl.addAttribution("Outline: Natural Earth");
  const state = {};
  const landmarks = L.featureGroup().addTo(map);
  const estimates = L.featureGroup().addTo(map);
  addPins(map, pins.landmarks, "landmark", landmarks);
  addPins(map, pins.estimates, "estimate", estimates);
  L.control.layers(null, {
    "At their landmarks": landmarks, "Estimated from the library's GPS": estimates,
  }).addTo(map);
  const positions = [...pins.landmarks, ...pins.estimates].map((p) => [p.latitude, p.longitude]);
  if (positions.length) map.fitBounds(positions, { padding: [40, 40], maxZoom: 4 });
  drawOutline(map, element.dataset.outline, state)
    .then(() => { element.dataset.outlineState = "drawn"; })
    .catch((problem) => { element.dataset.outlineState = `failed: ${problem.message}`; });
  tryTiles(map, element, state);
});
