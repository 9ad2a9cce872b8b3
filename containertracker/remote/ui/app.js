// The containertracker dashboard. Plain script, no build step, nothing fetched from elsewhere.
//
// Credentials live in sessionStorage only (this tab, until sign-out or the tab closes) and
// go out as an Authorization header; requests omit cookies and the browser's own HTTP-auth
// cache, so nothing is sent that the page did not add. Everything from the server is put
// in the page as text (textContent), never as markup. Live updates come from one
// Server-Sent Events stream, read with fetch() (EventSource cannot send a header).
"use strict";

(() => {
  const LOGIN = document.documentElement.dataset.login; // "token", "basic" or "none"
  const AUTH_KEY = "containertracker.authorization";
  const SESSION_HEADER = "X-ContainerTracker-Session";
  const TERMINAL = new Set(["done", "failed"]);
  const STATE_LABELS = {
    undetermined: "undetermined",
    queued: "queued",
    queuedHeld: "held",
    running: "running",
    suspended: "suspended",
    requeued: "requeued",
    requeuedHeld: "requeued, held",
    done: "done",
    failed: "failed",
  };
  const ACTION_LABELS = {
    suspend: "Suspend",
    resume: "Resume",
    hold: "Hold",
    release: "Release",
    terminate: "Terminate",
    delete: "Delete",
  };
  const OUTPUT_REFRESH_MS = 2000;
  const MACHINES_REFRESH_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    login: $("login"),
    loginForm: $("login-form"),
    loginUserRow: $("login-user-row"),
    loginUser: $("login-user"),
    loginSecret: $("login-secret"),
    loginSecretLabel: $("login-secret-label"),
    loginHint: $("login-hint"),
    loginError: $("login-error"),
    tabs: $("tabs"),
    sessionPicker: $("session-picker"),
    session: $("session"),
    live: $("live"),
    logout: $("logout"),
    banner: $("banner"),
    views: { jobs: $("jobs-view"), arrays: $("arrays-view"), machines: $("machines-view") },
    jobsBody: $("jobs").tBodies[0],
    jobsEmpty: $("jobs-empty"),
    truncated: $("truncated"),
    count: $("count"),
    filters: $("filters"),
    filterState: $("filter-state"),
    filterArray: $("filter-array"),
    filterName: $("filter-name"),
    filterClear: $("filter-clear"),
    arraysBody: $("arrays").tBodies[0],
    arraysEmpty: $("arrays-empty"),
    machinesBody: $("machines").tBodies[0],
    machinesNote: $("machines-note"),
    machinesRefresh: $("machines-refresh"),
    jobDialog: $("job-dialog"),
    jobTitle: $("job-title"),
    jobState: $("job-state"),
    jobActions: $("job-actions"),
    jobError: $("job-error"),
    jobClose: $("job-close"),
    jobStreams: $("job-streams"),
    jobOutputSection: $("job-output-section"),
    jobOutput: $("job-output"),
    jobOutputNote: $("job-output-note"),
    jobInfo: $("job-info"),
    jobTemplate: $("job-template"),
    confirmDialog: $("confirm-dialog"),
    confirmText: $("confirm-text"),
    confirmYes: $("confirm-yes"),
    confirmNo: $("confirm-no"),
  };

  const state = {
    session: null,
    rows: new Map(), // job id -> row
    rowElements: new Map(), // job id -> <tr>
    total: 0,
    truncated: false,
    tab: "jobs",
    machinesAllowed: false,
    stream: null, // AbortController of the open stream
    retryMs: 1000,
    retryTimer: null,
    openJob: null, // id of the job in the dialog
    which: "output",
    outputTimer: null,
    machinesTimer: null,
  };

  class Unauthorized extends Error {}
  class ApiError extends Error {}

  // -- requests --------------------------------------------------------------------------------

  function requestHeaders(extra) {
    const headers = { ...extra };
    const authorization = sessionStorage.getItem(AUTH_KEY);
    if (authorization) headers.Authorization = authorization;
    if (state.session !== null) headers[SESSION_HEADER] = state.session;
    return headers;
  }

  async function errorText(response) {
    const text = await response.text();
    try {
      const data = JSON.parse(text);
      if (data && typeof data.Error === "string") return data.Error;
    } catch (_) {
      // plain text
    }
    return text || `HTTP ${response.status}`;
  }

  async function api(path, options = {}) {
    const init = {
      method: options.method || "GET",
      headers: requestHeaders(options.body ? { "Content-Type": "application/json" } : {}),
      cache: "no-store",
      credentials: "omit",
    };
    if (options.body) init.body = JSON.stringify(options.body);
    const response = await fetch(path, init);
    if (response.status === 401) throw new Unauthorized();
    if (!response.ok) throw new ApiError(await errorText(response));
    return response.json();
  }

  function failed(error) {
    if (error instanceof Unauthorized) {
      signOut("The server refused these credentials.");
      return true;
    }
    return false;
  }

  function showBanner(text) {
    ui.banner.textContent = text || "";
    ui.banner.hidden = !text;
  }

  // -- signing in and out ----------------------------------------------------------------------

  function base64(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  function showLogin(message) {
    ui.login.hidden = false;
    ui.loginUserRow.hidden = LOGIN !== "basic";
    if (LOGIN === "basic") {
      ui.loginSecretLabel.textContent = "Password";
      ui.loginHint.textContent =
        "This server needs a user name and password. They are kept in this browser tab only, " +
        "until you sign out or close the tab.";
    }
    ui.loginError.textContent = message || "";
    (LOGIN === "basic" && !ui.loginUser.value ? ui.loginUser : ui.loginSecret).focus();
  }

  function clearData() {
    stopStream();
    stopOutputRefresh();
    clearInterval(state.machinesTimer);
    state.machinesTimer = null;
    state.rows.clear();
    state.rowElements.clear();
    state.session = null;
    ui.jobsBody.replaceChildren();
    ui.arraysBody.replaceChildren();
    ui.machinesBody.replaceChildren();
    ui.session.replaceChildren();
    ui.jobInfo.replaceChildren();
    ui.jobTemplate.replaceChildren();
    ui.jobOutput.textContent = "";
    if (ui.jobDialog.open) ui.jobDialog.close();
    if (ui.confirmDialog.open) ui.confirmDialog.close();
    for (const view of Object.values(ui.views)) view.hidden = true;
    ui.tabs.hidden = true;
    ui.sessionPicker.hidden = true;
    ui.logout.hidden = true;
    ui.live.textContent = "";
    ui.count.textContent = "";
    ui.truncated.hidden = true;
    showBanner("");
  }

  function signOut(message) {
    sessionStorage.removeItem(AUTH_KEY);
    clearData();
    showLogin(message);
  }

  ui.loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const secret = ui.loginSecret.value;
    if (!secret) return;
    const authorization =
      LOGIN === "basic" ? `Basic ${base64(`${ui.loginUser.value}:${secret}`)}` : `Bearer ${secret.trim()}`;
    sessionStorage.setItem(AUTH_KEY, authorization);
    ui.loginSecret.value = "";
    start();
  });

  ui.logout.addEventListener("click", () => signOut(""));

  async function start() {
    if (LOGIN !== "none" && !sessionStorage.getItem(AUTH_KEY)) {
      showLogin("");
      return;
    }
    let answer;
    try {
      answer = await api("ui/api/sessions");
    } catch (error) {
      if (!failed(error)) {
        showLogin("");
        ui.loginError.textContent = `The server could not be asked: ${error.message}`;
      }
      return;
    }
    ui.login.hidden = true;
    ui.loginError.textContent = "";
    ui.tabs.hidden = false;
    ui.logout.hidden = LOGIN === "none";
    state.machinesAllowed = answer.machines;
    ui.tabs.querySelector('[data-tab="machines"]').hidden = !answer.machines;
    fillSessions(answer.sessions);
    const wanted = new URLSearchParams(location.hash.slice(1)).get("session");
    chooseSession(answer.sessions.includes(wanted) ? wanted : answer.sessions[0] ?? null);
    showTab(state.tab === "machines" && !answer.machines ? "jobs" : state.tab);
  }

  // -- sessions and tabs -----------------------------------------------------------------------

  function fillSessions(names) {
    ui.session.replaceChildren(
      ...names.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        return option;
      }),
    );
    ui.sessionPicker.hidden = names.length === 0;
    if (names.length === 0) showBanner("This token may use no session that has jobs yet.");
  }

  function chooseSession(name) {
    state.session = name;
    ui.session.value = name ?? "";
    history.replaceState(null, "", name === null ? "#" : `#session=${encodeURIComponent(name)}`);
    state.rows.clear();
    state.rowElements.clear();
    ui.jobsBody.replaceChildren();
    ui.filterArray.value = "";
    render();
    if (name !== null) connect();
  }

  ui.session.addEventListener("change", () => chooseSession(ui.session.value));

  function showTab(tab) {
    state.tab = tab;
    for (const button of ui.tabs.querySelectorAll(".tab")) {
      button.setAttribute("aria-pressed", String(button.dataset.tab === tab));
    }
    for (const [name, view] of Object.entries(ui.views)) view.hidden = name !== tab;
    clearInterval(state.machinesTimer);
    state.machinesTimer = null;
    if (tab === "machines") loadMachines();
    render();
  }

  ui.tabs.addEventListener("click", (event) => {
    const button = event.target.closest(".tab");
    if (button) showTab(button.dataset.tab);
  });

  // -- the event stream ------------------------------------------------------------------------

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
  }

  function parseEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    return data.length ? { name, data: JSON.parse(data.join("\n")) } : null;
  }

  async function connect() {
    stopStream();
    const controller = new AbortController();
    state.stream = controller;
    ui.live.textContent = "connecting…";
    try {
      const response = await fetch("ui/api/stream", {
        headers: requestHeaders({ Accept: "text/event-stream" }),
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
      if (response.status === 401) throw new Unauthorized();
      if (!response.ok) throw new ApiError(await errorText(response));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) received(event);
        }
      }
    } catch (error) {
      if (controller.signal.aborted || failed(error)) return;
      showBanner(`Live updates interrupted: ${error.message}`);
    }
    if (controller.signal.aborted || state.stream !== controller) return;
    // The stream ended (its lifetime, the server restarting): open another after a pause.
    ui.live.textContent = `reconnecting in ${Math.round(state.retryMs / 1000)} s…`;
    state.retryTimer = setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 10000);
  }

  function received(event) {
    if (event.name === "table") {
      state.retryMs = 1000;
      ui.live.textContent = "● live";
      showBanner("");
      state.rows = new Map(event.data.rows.map((row) => [row.id, row]));
      state.total = event.data.total;
      state.truncated = event.data.truncated;
      render();
      if (state.openJob !== null) refreshOpenJob(state.rows.get(state.openJob));
    } else if (event.name === "rows") {
      for (const row of event.data.rows) state.rows.set(row.id, row);
      for (const id of event.data.gone) state.rows.delete(id);
      state.total = Math.max(state.total, state.rows.size);
      render();
      if (state.openJob !== null) {
        const row = event.data.rows.find((r) => r.id === state.openJob);
        if (row || event.data.gone.includes(state.openJob)) refreshOpenJob(row);
      }
    } else if (event.name === "notice") {
      ui.live.textContent = "catching up…";
      showBanner(event.data.text);
    }
  }

  // -- formatting ------------------------------------------------------------------------------

  function stateText(row) {
    const label = STATE_LABELS[row.state] || row.state;
    return row.subState && row.subState !== label ? `${label}: ${row.subState}` : label;
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
    if (date.toDateString() === new Date().toDateString()) return time;
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time.slice(0, 5)}`;
  }

  function runtimeSeconds(row) {
    if ((row.state === "running" || row.state === "suspended") && row.started) {
      return Math.max(0, (Date.now() - Date.parse(row.started)) / 1000);
    }
    return row.runtime;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return `${seconds.toFixed(1)}s`;
    const whole = Math.floor(seconds);
    const hours = Math.floor(whole / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const secs = whole % 60;
    return hours ? `${hours}h${String(minutes).padStart(2, "0")}m` : `${minutes}m${String(secs).padStart(2, "0")}s`;
  }

  function exitText(row) {
    if (row.exitStatus === null || row.exitStatus === undefined) return "";
    return row.signal ? `${row.exitStatus} (${row.signal})` : String(row.exitStatus);
  }

  function bytes(count) {
    return `${(count / 2 ** 30).toFixed(1)} GiB`;
  }

  // Newest first; an array's tasks together, in task order, where its first task was
  // submitted (the engine creates a throttled array's later tasks while the first run).
  function sortNewestFirst(rows) {
    const arrayTimes = new Map();
    for (const row of rows) {
      const known = arrayTimes.get(row.array);
      if (row.array && (known === undefined || (row.submitted || "") < known)) {
        arrayTimes.set(row.array, row.submitted || "");
      }
    }
    const key = (row) => (row.array ? arrayTimes.get(row.array) : row.submitted || "");
    return rows.sort((a, b) => {
      const when = key(b).localeCompare(key(a));
      if (when) return when;
      if (a.array !== b.array) return a.array.localeCompare(b.array);
      return (Number(a.task) || 0) - (Number(b.task) || 0) || a.id.localeCompare(b.id);
    });
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function jobButton(id) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link mono";
    button.textContent = id.slice(0, 12);
    button.title = `Open job ${id}`;
    button.dataset.job = id;
    return button;
  }

  // -- the jobs table --------------------------------------------------------------------------

  function visibleRows() {
    const wantedState = ui.filterState.value;
    const wantedArray = ui.filterArray.value;
    const text = ui.filterName.value.trim().toLowerCase();
    return sortNewestFirst(
      [...state.rows.values()]
        .filter((row) => !wantedState || row.state === wantedState)
        .filter((row) => !wantedArray || row.array === wantedArray)
        .filter((row) => !text || row.name.toLowerCase().includes(text) || row.id.startsWith(text)),
    );
  }

  function rowElement(row) {
    let tr = state.rowElements.get(row.id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.id = row.id;
      const idCell = document.createElement("td");
      idCell.append(jobButton(row.id));
      tr.append(idCell);
      for (const name of [
        "name", "array", "task", "image", "state", "machine",
        "submitted", "started", "finished", "runtime", "exit",
      ]) {
        const td = cell("", name === "task" || name === "runtime" || name === "exit" ? "num" : "");
        td.dataset.field = name;
        tr.append(td);
      }
      state.rowElements.set(row.id, tr);
    }
    const values = {
      name: row.name,
      array: row.array,
      task: row.task,
      image: row.image,
      state: stateText(row),
      machine: row.machine,
      submitted: when(row.submitted),
      started: when(row.started),
      finished: when(row.finished),
      runtime: duration(runtimeSeconds(row)),
      exit: exitText(row),
    };
    for (const td of tr.querySelectorAll("td[data-field]")) {
      const value = values[td.dataset.field];
      if (td.textContent !== value) td.textContent = value;
    }
    tr.className = `state-${row.state}`;
    tr.querySelector('[data-field="state"]').title = row.annotation || "";
    return tr;
  }

  function renderJobs() {
    const rows = visibleRows();
    for (const id of [...state.rowElements.keys()]) {
      if (!state.rows.has(id)) state.rowElements.delete(id);
    }
    const wanted = rows.map(rowElement);
    const current = [...ui.jobsBody.children];
    const same = wanted.length === current.length && wanted.every((tr, i) => tr === current[i]);
    if (!same) keepingFocus(ui.jobsBody, "job", () => ui.jobsBody.replaceChildren(...wanted));
    ui.jobsEmpty.hidden = rows.length > 0;
    ui.count.textContent = `${rows.length} of ${state.rows.size} jobs`;
    ui.truncated.hidden = !state.truncated;
    ui.truncated.textContent = state.truncated
      ? `This session has ${state.total} jobs; the first ${state.rows.size} the engine lists are shown.`
      : "";
  }

  function renderArrayFilter() {
    const arrays = [...new Set([...state.rows.values()].map((row) => row.array).filter(Boolean))].sort();
    const chosen = ui.filterArray.value;
    const options = [["", "any"], ...arrays.map((id) => [id, id])].map(([value, text]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      return option;
    });
    const known = [...ui.filterArray.options].map((o) => o.value).join("\n");
    if (known !== options.map((o) => o.value).join("\n")) {
      ui.filterArray.replaceChildren(...options);
      ui.filterArray.value = arrays.includes(chosen) ? chosen : "";
    }
  }

  // -- the arrays view -------------------------------------------------------------------------

  function arraySummaries() {
    const arrays = new Map();
    for (const row of state.rows.values()) {
      if (!row.array) continue;
      let summary = arrays.get(row.array);
      if (!summary) {
        summary = { id: row.array, name: row.name, image: row.image, submitted: row.submitted,
          done: 0, failed: 0, running: 0, queued: 0, held: 0, tasks: 0 };
        arrays.set(row.array, summary);
      }
      summary.tasks += 1;
      if (row.submitted && row.submitted < summary.submitted) summary.submitted = row.submitted;
      if (row.state === "done") summary.done += 1;
      else if (row.state === "failed") summary.failed += 1;
      else if (row.state === "running" || row.state === "suspended") summary.running += 1;
      else if (row.state === "queuedHeld" || row.state === "requeuedHeld") summary.held += 1;
      else summary.queued += 1;
    }
    return [...arrays.values()].sort((a, b) => (b.submitted || "").localeCompare(a.submitted || ""));
  }

  function progressBar(summary) {
    const bar = document.createElement("div");
    bar.className = "bar-chart";
    bar.setAttribute("role", "img");
    bar.setAttribute(
      "aria-label",
      `${summary.done} done, ${summary.failed} failed, ${summary.running} running, ` +
        `${summary.queued} queued, ${summary.held} held of ${summary.tasks}`,
    );
    for (const part of ["done", "failed", "running", "queued", "held"]) {
      if (!summary[part]) continue;
      const segment = document.createElement("span");
      segment.className = `segment ${part}`;
      segment.style.flexGrow = String(summary[part]); // CSSOM: allowed by the CSP
      bar.append(segment);
    }
    return bar;
  }

  // Redraws ``container`` with ``redraw`` and gives the focus back to the button that had
  // it (found again by its data attribute), so that keyboard users keep their place.
  function keepingFocus(container, attribute, redraw) {
    const focused = document.activeElement;
    const key = container.contains(focused) && focused.dataset ? focused.dataset[attribute] : undefined;
    redraw();
    if (key === undefined) return;
    for (const element of container.querySelectorAll("button")) {
      if (element.dataset[attribute] === key) {
        element.focus();
        break;
      }
    }
  }

  function renderArrays() {
    keepingFocus(ui.arraysBody, "showArray", drawArrays);
  }

  function drawArrays() {
    const summaries = arraySummaries();
    ui.arraysBody.replaceChildren(
      ...summaries.map((summary) => {
        const tr = document.createElement("tr");
        tr.dataset.array = summary.id;
        const progress = document.createElement("td");
        progress.append(progressBar(summary));
        const show = document.createElement("td");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "Tasks";
        button.title = `Show the tasks of array ${summary.id}`;
        button.dataset.showArray = summary.id;
        show.append(button);
        tr.append(
          cell(summary.id, "mono"), cell(summary.name), cell(summary.image), progress,
          cell(String(summary.done), "num"), cell(String(summary.failed), "num"),
          cell(String(summary.running), "num"), cell(String(summary.queued), "num"),
          cell(String(summary.held), "num"), cell(String(summary.tasks), "num"), show,
        );
        return tr;
      }),
    );
    ui.arraysEmpty.hidden = summaries.length > 0;
  }

  ui.arraysBody.addEventListener("click", (event) => {
    const button = event.target.closest("[data-show-array]");
    if (!button) return;
    renderArrayFilter();
    ui.filterArray.value = button.dataset.showArray;
    ui.filterState.value = "";
    ui.filterName.value = "";
    showTab("jobs");
    ui.filterArray.focus();
  });

  function render() {
    renderArrayFilter();
    if (state.tab === "jobs") renderJobs();
    else if (state.tab === "arrays") renderArrays();
  }

  for (const input of [ui.filterState, ui.filterArray]) input.addEventListener("change", renderJobs);
  ui.filterName.addEventListener("input", renderJobs);
  ui.filters.addEventListener("submit", (event) => event.preventDefault());
  ui.filterClear.addEventListener("click", () => {
    ui.filterState.value = "";
    ui.filterArray.value = "";
    ui.filterName.value = "";
    renderJobs();
  });

  // Running jobs' runtimes count on between events, with no request.
  setInterval(() => {
    if (state.tab !== "jobs") return;
    for (const row of state.rows.values()) {
      if (row.state !== "running" && row.state !== "suspended") continue;
      const tr = state.rowElements.get(row.id);
      const td = tr && tr.querySelector('[data-field="runtime"]');
      if (td) td.textContent = duration(runtimeSeconds(row));
    }
  }, 1000);

  // -- the machines view -----------------------------------------------------------------------

  async function loadMachines() {
    if (!state.machinesAllowed) return;
    let answer;
    try {
      answer = await api("ui/api/machines");
    } catch (error) {
      if (!failed(error)) ui.machinesNote.textContent = `Could not read the machines: ${error.message}`;
      return;
    }
    ui.machinesNote.textContent = `As of ${when(new Date().toISOString())}` +
      (answer.truncated ? "; only the jobs among the first containers the engine lists" : "");
    keepingFocus(ui.machinesBody, "job", () => drawMachines(answer.machines));
    // Jobs come and go: look again now and then while the view is shown (one request).
    if (state.tab === "machines" && state.machinesTimer === null) {
      state.machinesTimer = setInterval(loadMachines, MACHINES_REFRESH_MS);
    }
  }

  function drawMachines(machines) {
    ui.machinesBody.replaceChildren(
      ...machines.map((machine) => {
        const tr = document.createElement("tr");
        tr.dataset.machine = machine.name;
        const jobs = document.createElement("td");
        jobs.className = "job-list";
        jobs.append(`${machine.jobs.length} `);
        for (const job of machine.jobs) {
          // Only the session's own jobs open (the others are another session's business).
          const own = state.rows.has(job.id);
          const item = own ? jobButton(job.id) : document.createElement("span");
          if (!own) {
            item.className = "mono muted";
            item.textContent = job.id.slice(0, 12);
          }
          item.title = `${STATE_LABELS[job.state] || job.state} ${job.image}` +
            (own ? "" : " (another session)");
          jobs.append(item, " ");
        }
        tr.append(
          cell(machine.name), cell(machine.available ? "yes" : "no"),
          cell(String(machine.cpus), "num"), cell(bytes(machine.memory), "num"),
          cell(machine.load ? machine.load.toFixed(2) : "—", "num"),
          cell(`${machine.architecture} ${machine.os}`), cell(machine.engine), jobs,
        );
        return tr;
      }),
    );
  }

  ui.machinesRefresh.addEventListener("click", loadMachines);

  // -- one job ---------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-job]");
    if (button) openJob(button.dataset.job);
  });

  function stopOutputRefresh() {
    clearTimeout(state.outputTimer);
    state.outputTimer = null;
  }

  function fields(list, object) {
    const entries = Object.entries(object || {}).filter(([, value]) => {
      if (value === null || value === "" || value === false) return false;
      if (Array.isArray(value)) return value.length > 0;
      if (typeof value === "object") return Object.keys(value).length > 0;
      return true;
    });
    list.replaceChildren(
      ...entries.flatMap(([key, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = key;
        const dd = document.createElement("dd");
        if (Array.isArray(value)) dd.textContent = value.join(", ");
        else if (typeof value === "object") {
          dd.textContent = Object.entries(value).map(([k, v]) => `${k}: ${v}`).join("\n");
        } else dd.textContent = String(value);
        return [dt, dd];
      }),
    );
  }

  function showJobRow(row) {
    ui.jobState.textContent = stateText(row) + (row.exitStatus !== null ? `, exit status ${exitText(row)}` : "");
    ui.jobState.className = `state-${row.state}`;
    ui.jobTitle.textContent = `Job ${row.id.slice(0, 12)}${row.name ? ` (${row.name})` : ""}` +
      (row.array ? ` · array ${row.array} task ${row.task}` : "");
    ui.jobActions.replaceChildren(
      ...row.actions.map((action) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.action = action;
        button.textContent = ACTION_LABELS[action] || action;
        if (action === "terminate" || action === "delete") button.className = "danger";
        return button;
      }),
    );
    const streams = { output: row.hasOutput, error: row.hasError };
    for (const button of ui.jobStreams.querySelectorAll("button")) {
      button.hidden = !streams[button.dataset.which];
    }
    if (!streams[state.which]) state.which = row.hasOutput ? "output" : "error";
    ui.jobOutputSection.hidden = !row.hasOutput && !row.hasError;
  }

  async function openJob(id) {
    state.openJob = id;
    state.which = "output";
    ui.jobError.textContent = "";
    ui.jobOutput.textContent = "";
    ui.jobOutputNote.textContent = "";
    let answer;
    try {
      answer = await api(`ui/api/job?jobID=${encodeURIComponent(id)}`);
    } catch (error) {
      if (!failed(error)) showBanner(`Could not read job ${id.slice(0, 12)}: ${error.message}`);
      return;
    }
    if (state.openJob !== id) return;
    showJobRow(answer.row);
    fields(ui.jobInfo, answer.info);
    fields(ui.jobTemplate, answer.template);
    if (!ui.jobDialog.open) ui.jobDialog.showModal();
    loadOutput(answer.row);
  }

  async function refreshOpenJob(row) {
    const id = state.openJob;
    if (!row) {
      ui.jobError.textContent = "This job has been deleted.";
      ui.jobActions.replaceChildren();
      stopOutputRefresh();
      return;
    }
    showJobRow(row);
    try {
      const answer = await api(`ui/api/job?jobID=${encodeURIComponent(id)}`);
      if (state.openJob === id) fields(ui.jobInfo, answer.info);
    } catch (error) {
      failed(error);
    }
    loadOutput(row);
  }

  async function loadOutput(row) {
    stopOutputRefresh();
    const id = row.id;
    if (!row.hasOutput && !row.hasError) return;
    for (const button of ui.jobStreams.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.which === state.which));
    }
    let answer;
    try {
      answer = await api(`ui/api/output?jobID=${encodeURIComponent(id)}&which=${state.which}`);
    } catch (error) {
      if (failed(error) || state.openJob !== id) return;
      ui.jobOutputNote.textContent = error.message;
      ui.jobOutput.textContent = "";
      answer = null;
    }
    if (state.openJob !== id) return;
    if (answer) {
      const follow = ui.jobOutput.scrollTop + ui.jobOutput.clientHeight >= ui.jobOutput.scrollHeight - 4;
      ui.jobOutput.textContent = answer.text;
      if (follow) ui.jobOutput.scrollTop = ui.jobOutput.scrollHeight;
      ui.jobOutputNote.textContent =
        (answer.live
          ? `Live, from the engine's log (written to ${answer.path} when the job ends)`
          : answer.path) + (answer.truncated ? "; only the end is shown" : "");
    }
    // A running job's output grows without any event: read it again while it runs.
    const current = state.rows.get(id) || row;
    if (!TERMINAL.has(current.state) || (answer && answer.live)) {
      state.outputTimer = setTimeout(() => {
        if (state.openJob === id && ui.jobDialog.open) loadOutput(state.rows.get(id) || row);
      }, OUTPUT_REFRESH_MS);
    }
  }

  ui.jobStreams.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-which]");
    if (!button || state.openJob === null) return;
    state.which = button.dataset.which;
    const row = state.rows.get(state.openJob);
    if (row) loadOutput(row);
  });

  ui.jobClose.addEventListener("click", () => ui.jobDialog.close());
  ui.jobDialog.addEventListener("close", () => {
    state.openJob = null;
    stopOutputRefresh();
  });

  function confirmAction(text, label) {
    ui.confirmText.textContent = text;
    ui.confirmYes.textContent = label;
    ui.confirmDialog.returnValue = "";
    ui.confirmDialog.showModal();
    ui.confirmNo.focus();
    return new Promise((resolve) => {
      ui.confirmDialog.addEventListener("close", () => resolve(ui.confirmDialog.returnValue === "yes"), {
        once: true,
      });
    });
  }

  ui.confirmYes.addEventListener("click", () => ui.confirmDialog.close("yes"));
  ui.confirmNo.addEventListener("click", () => ui.confirmDialog.close("no"));

  ui.jobActions.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || state.openJob === null) return;
    const id = state.openJob;
    const action = button.dataset.action;
    const label = ACTION_LABELS[action] || action;
    const sure = await confirmAction(`${label} job ${id.slice(0, 12)}?`, label);
    if (!sure) {
      button.focus();
      return;
    }
    ui.jobError.textContent = "";
    for (const b of ui.jobActions.querySelectorAll("button")) b.disabled = true;
    try {
      const answer = await api("ui/api/control", { method: "POST", body: { jobID: id, action } });
      if (answer.gone) {
        state.rows.delete(answer.gone);
        render();
        ui.jobDialog.close();
        return;
      }
      state.rows.set(answer.row.id, answer.row);
      render();
      if (state.openJob === id) refreshOpenJob(answer.row);
    } catch (error) {
      if (!failed(error)) ui.jobError.textContent = `${label} failed: ${error.message}`;
      for (const b of ui.jobActions.querySelectorAll("button")) b.disabled = false;
    }
  });

  start();
})();
