// OAuth 2.0 Form Post Response Mode: submit the response to the client at once.
document.getElementById("form-post").submit();
