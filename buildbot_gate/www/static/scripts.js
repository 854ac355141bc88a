// buildbot-gate: the gate queue page, hand-written against the globals Buildbot's bundle exposes
// (React, BuildbotPluginSupport), so that no node build is needed.
(function () {
  "use strict";
  const React = globalThis.React;
  const support = globalThis.BuildbotPluginSupport;
  if (!React || !support) {
    return;
  }
  const h = React.createElement;
  const POLL_MS = 2000;

  function duration(seconds) {
    if (seconds === null || seconds === undefined) {
      return "";
    }
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) {
      return s + " s";
    }
    if (s < 3600) {
      return Math.floor(s / 60) + " min " + (s % 60) + " s";
    }
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  // A failing item leaves the queue without landing; otherwise no number until there is data.
  function etaText(item) {
    if (item.state === "failing") {
      return "";
    }
    if (item.eta_seconds === null || item.eta_seconds === undefined) {
      return "no estimate yet";
    }
    return "in about " + duration(item.eta_seconds);
  }

  function resultClass(build) {
    if (build.results === null || build.results === undefined) {
      return build.number === null ? "gate-pending" : "gate-running";
    }
    return build.results === 0 ? "gate-success" : "gate-failure-" + build.results;
  }

  function buildLinks(builds) {
    return builds.map(function (b, i) {
      const text = b.builder + (b.number !== null ? " #" + b.number : " (pending)") +
        (b.gating ? "" : " (advisory)");
      const label = b.result_text ? text + ": " + b.result_text : text;
      const cls = "gate-build " + resultClass(b);
      return b.url
        ? h("a", { key: i, className: cls, href: b.url, "data-gate-build": b.builder }, label)
        : h("span", { key: i, className: cls, "data-gate-build": b.builder }, label);
    });
  }

  function issueLink(item) {
    const text = item.issue + " ps " + item.patchset;
    return item.review_url ? h("a", { href: item.review_url }, text) : text;
  }

  function QueueTable(props) {
    const branch = props.branch;
    const rows = branch.items.map(function (item) {
      return h(
        "tr",
        { key: item.issue, "data-gate-issue": item.issue, "data-gate-state": item.state },
        h("td", null, item.position),
        h("td", null, issueLink(item)),
        h("td", null, item.subject, item.urgent ? h("span", { className: "gate-urgent" }, " merge now") : null),
        h("td", null, item.owner),
        h("td", null, item.approver),
        h("td", { className: "gate-state gate-state-" + item.state }, item.state,
          item.express ? " (ahead of the queue, on the tip)" : "",
          item.ahead.length ? " (on top of " + item.ahead.join(", ") + ")" : "",
          item.rebased_over.length ? " (lands over urgent " + item.rebased_over.join(", ") + ")" : ""),
        h("td", null, buildLinks(item.builds)),
        h("td", null, duration(item.in_queue_seconds)),
        h("td", { className: "gate-eta" }, etaText(item))
      );
    });
    return h(
      "div",
      { className: "gate-branch", "data-gate-branch": branch.branch },
      h("h4", null, "Branch " + branch.branch + " ",
        h("small", null, branch.window > 1 ? "pipelined, window " + branch.window : "serial"),
        branch.tip_broken ? h("span", { className: "label label-danger gate-tip-broken", "data-gate-tip-broken": branch.branch },
          " tip broken: its tests fail without any patch; items are held") : null),
      branch.held ? h("div", { className: "alert alert-danger gate-held", "data-gate-held": branch.branch },
        h("strong", null, "Held: "), branch.held,
        ". Nothing lands on " + branch.branch + " until an admin fixes the cause and resumes it. ",
        props.resume ? h(ResumeButton, { branch: branch.branch, scheduler: props.resume }) : null) : null,
      branch.items.length === 0
        ? h("p", { className: "gate-empty" }, "Nothing queued.")
        : h(
            "table",
            { className: "table table-condensed table-striped gate-queue" },
            h("thead", null, h("tr", null,
              ["#", "Issue", "Subject", "Owner", "Approved by", "State", "Builds", "In queue", "Lands"].map(
                function (t) { return h("th", { key: t }, t); }))),
            h("tbody", null, rows)
          )
    );
  }

  function ResumeButton(props) {
    const [said, setSaid] = React.useState("");
    function resume() {
      setSaid("asking ...");
      fetch("api/v2/forceschedulers/" + encodeURIComponent(props.scheduler), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0", method: "force", id: 1, params: { branch: props.branch },
        }),
      })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          setSaid(answer.error ? "refused: " + answer.error.message : "resume requested");
        })
        .catch(function (e) { setSaid("failed: " + e); });
    }
    return h("span", null,
      h("button", { className: "btn btn-default btn-xs", onClick: resume, "data-gate-resume": props.branch },
        "Resume branch"),
      said ? h("span", { className: "gate-said" }, " " + said) : null);
  }

  function RecheckButton(props) {
    const [said, setSaid] = React.useState("");
    function recheck() {
      setSaid("asking ...");
      fetch("api/v2/forceschedulers/" + encodeURIComponent(props.scheduler), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0", method: "force", id: 1, params: { issue: String(props.issue) },
        }),
      })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          setSaid(answer.error ? "refused: " + answer.error.message : "recheck requested");
        })
        .catch(function (e) { setSaid("failed: " + e); });
    }
    return h("span", null,
      h("button", { className: "btn btn-default btn-xs", onClick: recheck, "data-gate-recheck": props.issue },
        "Recheck issue"),
      said ? h("span", { className: "gate-said" }, " " + said) : null);
  }

  function Recent(props) {
    if (!props.items.length) {
      return null;
    }
    return h("div", { className: "gate-recent" },
      h("h4", null, "Recently finished"),
      h("table", { className: "table table-condensed gate-recent-table" },
        h("thead", null, h("tr", null,
          ["Issue", "Branch", "Subject", "Result", "Why", ""].map(function (t, i) { return h("th", { key: i }, t); }))),
        h("tbody", null, props.items.map(function (item, i) {
          return h("tr", { key: i, "data-gate-issue": item.issue, "data-gate-state": item.state },
            h("td", null, issueLink(item)),
            h("td", null, item.branch),
            h("td", null, item.subject),
            h("td", { className: "gate-state gate-state-" + item.state }, item.state,
              item.landed_node ? " " + item.landed_node.substring(0, 12) : ""),
            h("td", { className: "gate-why" }, item.reason),
            h("td", null, item.state === "ejected" ? h(RecheckButton, { issue: item.issue, scheduler: props.recheck }) : null));
        }))));
  }

  function Costs(props) {
    if (!props.rows || !props.rows.length) { return null; }
    return h("div", { className: "gate-costs" },
      h("h4", null, "What the gate cost the fleet"),
      h("table", { className: "table table-condensed gate-costs-table" },
        h("thead", null, h("tr", null,
          ["Day (UTC)", "Branch", "Worker minutes", "Builds", "Pushes"].map(function (t, i) { return h("th", { key: i }, t); }))),
        h("tbody", null, props.rows.map(function (row, i) {
          return h("tr", { key: i, "data-gate-cost-day": row.day, "data-gate-cost-branch": row.branch },
            h("td", null, row.day),
            h("td", null, row.branch),
            h("td", null, row.worker_minutes.toFixed(1)),
            h("td", null, row.builds),
            h("td", null, row.pushes));
        }))));
  }

  // Elastic recheck: hits per known-failure signature this week, and the failures that matched
  // none (with their logs), from which the next signature is written.
  function KnownFailures(props) {
    const k = props.known;
    if (!k || (!k.enabled && !k.signatures.length && !k.unclassified.length)) {
      return null;
    }
    function link(text, url) {
      return url ? h("a", { href: url }, text) : text;
    }
    return h("div", { className: "gate-known-failures" },
      h("h4", null, "Known failures (last " + k.days + " days)"),
      k.signatures.length
        ? h("table", { className: "table table-condensed gate-known-table" },
            h("thead", null, h("tr", null,
              ["Known failure", "Title", "Hits", "Last hit"].map(function (t, i) { return h("th", { key: i }, t); }))),
            h("tbody", null, k.signatures.map(function (s) {
              return h("tr", { key: s.id, "data-gate-known": s.id, "data-gate-known-hits": s.hits },
                h("td", null, link(s.id, s.link), s.state === "open" ? "" : " (" + s.state + ")"),
                h("td", null, s.title),
                h("td", null, s.hits + (s.cleared ? " (" + s.cleared + " cleared by rerun)" : "")),
                h("td", null, s.last ? new Date(s.last * 1000).toLocaleString() : ""));
            })))
        : h("p", null, "No known failures in the catalogue."),
      h("h5", null, "Unclassified failures: " + k.unclassified_count),
      k.unclassified.length
        ? h("ul", { className: "gate-unclassified" }, k.unclassified.map(function (u, i) {
            return h("li", { key: i, "data-gate-unclassified": u.issue },
              new Date(u.at * 1000).toLocaleString() + ": issue " + u.issue + " ps " + u.patchset +
              " on " + u.branch + ", " + u.builder + ": ",
              link("build", u.build_url), " | ", link("log", u.log_url),
              u.cleared_by_rerun ? " (cleared by its rerun: the tree counted as tested)" : "");
          }))
        : h("p", null, "Every failure this week matched a known one, or none failed."));
  }

  function Undelivered(props) {
    // Rietveld comments (props.tracker unset) or tracker messages owed and given up on.
    const u = props.undelivered;
    if (!u || (!u.count && !u.pending)) {
      return null;
    }
    const what = props.tracker ? ["tracker message", "tracker messages"] : ["comment", "comments"];
    const where = props.tracker ? "the tracker" : "Rietveld";
    const attr = props.tracker ? "data-gate-tracker-undelivered" : "data-gate-undelivered";
    const many = function (n) { return n + " " + (n === 1 ? what[0] : what[1]); };
    return h("div", null,
      u.count
        ? h("div", { className: "alert alert-danger gate-undelivered", [attr]: u.count },
            h("strong", null, many(u.count) + " could not be delivered"),
            " to " + where + " and were given up (the master log has each one): ",
            u.recent.map(function (c, i) {
              return h("span", { key: i, [attr + "-issue"]: c.issue },
                (i ? "; " : "") + "issue " + c.issue + ": " + c.first_line);
            }))
        : null,
      u.pending
        ? h("p", { className: "gate-comments-pending", [props.tracker ? "data-gate-tracker-pending" : "data-gate-comments-pending"]: u.pending },
            many(u.pending) + " waiting for " + where + ", retried until delivered.")
        : null);
  }

  function GateQueuePage() {
    const [data, setData] = React.useState(null);
    const [error, setError] = React.useState("");
    // Refreshes shown so far, on the page as data-gate-refreshes: what changed, and when, is
    // observable per refresh (the browser test watches it) rather than by sampling.
    const [refreshes, setRefreshes] = React.useState(0);
    React.useEffect(function () {
      let alive = true;
      function poll() {
        fetch("plugins/gate/queue.json", { credentials: "same-origin", cache: "no-store" })
          .then(function (r) { return r.json(); })
          .then(function (d) {
            if (alive) {
              if (d.error) {
                setError(d.error);
              } else {
                setData(d);
                setError("");
                setRefreshes(function (n) { return n + 1; });
              }
            }
          })
          .catch(function (e) { if (alive) { setError(String(e)); } });
      }
      poll();
      const timer = setInterval(poll, POLL_MS);
      return function () { alive = false; clearInterval(timer); };
    }, []);
    if (!data) {
      return h("div", { className: "container gate-page" }, error ? "Gate queue: " + error : "Loading the gate queue ...");
    }
    return h(
      "div",
      { className: "container gate-page", "data-gate-refreshes": refreshes },
      h("h3", null, "Gate queue"),
      error ? h("p", { className: "gate-error" }, error) : null,
      h("p", { className: "gate-estimate" },
        (data.estimate.test_seconds === null || data.estimate.land_seconds === null
          ? "No estimate yet: it needs a green test build and a green push first."
          : "Estimates from recent builds: tests " + duration(data.estimate.test_seconds) +
            ", push " + duration(data.estimate.land_seconds) + ".") + " Updated " +
        new Date(data.generated_at * 1000).toLocaleTimeString() + "."),
      (data.quarantined || []).length
        ? h("div", { className: "alert alert-warning gate-quarantine" },
            h("strong", null, "Quarantined workers: "),
            data.quarantined.map(function (q, i) {
              return h("span", { key: i, "data-gate-quarantined": q.worker }, (i ? "; " : "") + q.worker + " (" + q.reason + ")");
            }),
            ". Their runs no longer gate; unpause a worker on its Workers page to restore it.")
        : null,
      h(Undelivered, { undelivered: data.undelivered }),
      h(Undelivered, { undelivered: data.tracker_undelivered, tracker: true }),
      data.branches.map(function (b) { return h(QueueTable, { key: b.branch, branch: b, resume: data.resume }); }),
      h(Recent, { items: data.recent, recheck: data.recheck }),
      h(Costs, { rows: data.costs }),
      h(KnownFailures, { known: data.known_failures })
    );
  }

  support.buildbotSetupPlugin(function (reg) {
    reg.registerMenuGroup({
      name: "gatequeue",
      caption: "Gate queue",
      icon: h("span", { className: "gate-icon" }, "\u2630"),
      order: 4,
      route: "/gatequeue",
      parentName: null,
    });
    reg.registerRoute({ route: "/gatequeue", group: "gatequeue", element: function () { return h(GateQueuePage); } });
  });
})();
