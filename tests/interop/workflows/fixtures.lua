-- The conformance suite's resources and prompts, published with a small
-- tool that lists them.  Resources and prompts are data: uri_template
-- variables and prompt arguments are substituted where {name} appears.
local w = require "weft"

return w.workflow{
  name = "conformance_fixtures",
  description = "Lists the resources and prompts this server publishes",
  resources = {
    { uri = "test://static-text", name = "static-text", description = "A static text resource",
      mime_type = "text/plain", text = "This is the content of the static text resource." },
    { uri = "test://static-binary", name = "static-binary", description = "A static PNG image",
      mime_type = "image/png", blob = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC" },
    { uri = "test://watched-resource", name = "watched-resource", description = "A resource to subscribe to",
      mime_type = "text/plain", text = "Watched resource content." },
    { uri_template = "test://template/{id}/data", name = "template-data", description = "Data for an id",
      mime_type = "application/json",
      text = '{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}' },
  },
  prompts = {
    { name = "test_simple_prompt", description = "A prompt without arguments",
      messages = { { role = "user", content = { type = "text", text = "This is a simple prompt for testing." } } } },
    { name = "test_prompt_with_arguments", description = "A prompt with two arguments",
      arguments = { { name = "arg1", description = "First test argument", required = true,
                      complete = { "paris", "park", "party" } },
                    { name = "arg2", description = "Second test argument", required = true } },
      messages = { { role = "user", content = { type = "text",
        text = "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'" } } } },
    { name = "test_prompt_with_embedded_resource", description = "A prompt embedding a resource",
      arguments = { { name = "resourceUri", description = "URI of the resource to embed", required = true } },
      messages = {
        { role = "user", content = { type = "resource", resource = { uri = "{resourceUri}",
          mimeType = "text/plain", text = "Embedded resource content for testing." } } },
        { role = "user", content = { type = "text", text = "Please process the embedded resource above." } } } },
    { name = "test_prompt_with_image", description = "A prompt with an image",
      messages = {
        { role = "user", content = { type = "image", mimeType = "image/png", data = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC" } },
        { role = "user", content = { type = "text", text = "Please analyze the image above." } } } },
  },
  w.fn{ name = "list", function(ctx)
    return "resources: test://static-text, test://static-binary, test://watched-resource, " ..
           "test://template/{id}/data; prompts: test_simple_prompt, test_prompt_with_arguments, " ..
           "test_prompt_with_embedded_resource, test_prompt_with_image"
  end },
}
