// Drag and drop on the pipeline board: drop a card on a column to move the lead to that stage.
// The server decides (POST with the CSRF token); the card moves only once it has said yes.
(function () {
  "use strict";
  var board = document.querySelector(".lead-board[data-move-url]");
  if (!board) return;
  var status = document.querySelector(".lead-board-status");
  var dragged = null;

  function count(column, delta) {
    var badge = column.querySelector(".lead-column-count");
    var n = parseInt(badge.textContent, 10);
    if (!isNaN(n) && badge.textContent.indexOf("+") < 0) badge.textContent = String(n + delta);
  }

  function move(card, column) {
    var body = new FormData();
    body.append("lead_id", card.getAttribute("data-lead-id"));
    body.append("stage_id", column.getAttribute("data-stage-id"));
    body.append("csrf_token", board.getAttribute("data-csrf"));
    card.classList.add("moving");
    status.textContent = "";
    fetch(board.getAttribute("data-move-url"), {method: "POST", body: body, credentials: "same-origin",
                                                 headers: {"X-CSRFToken": board.getAttribute("data-csrf")}})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) throw new Error((data.errors && Object.values(data.errors)[0]) || "The lead was not moved.");
          var from = card.closest(".lead-column");
          column.insertBefore(card, column.querySelector(".lead-card"));
          count(from, -1);
          count(column, 1);
        });
      })
      .catch(function (error) { status.textContent = error.message; })
      .then(function () { card.classList.remove("moving"); });
  }

  board.addEventListener("dragstart", function (event) {
    dragged = event.target.closest && event.target.closest(".lead-card[draggable=true]");
    if (dragged) event.dataTransfer.setData("text/plain", dragged.getAttribute("data-lead-id"));
  });
  board.addEventListener("dragover", function (event) {
    var column = event.target.closest && event.target.closest(".lead-column[data-stage-id]");
    if (dragged && column && column.getAttribute("data-stage-id")) {
      event.preventDefault();
      column.classList.add("drop-target");
    }
  });
  board.addEventListener("dragleave", function (event) {
    var column = event.target.closest && event.target.closest(".lead-column");
    if (column) column.classList.remove("drop-target");
  });
  board.addEventListener("drop", function (event) {
    var column = event.target.closest && event.target.closest(".lead-column[data-stage-id]");
    event.preventDefault();
    if (!column) return;
    column.classList.remove("drop-target");
    if (dragged && column !== dragged.closest(".lead-column")) move(dragged, column);
    dragged = null;
  });
})();
