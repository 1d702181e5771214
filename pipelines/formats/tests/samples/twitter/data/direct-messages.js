window.YTD.direct_messages.part0 = [
  {
    "dmConversation" : {
      "conversationId" : "783214-2244994945",
      "messages" : [
        {
          "messageCreate" : {
            "recipientId" : "783214",
            "reactions" : [ ],
            "urls" : [ ],
            "text" : "nice",
            "mediaUrls" : [ ],
            "senderId" : "2244994945",
            "id" : "1123590000000000003",
            "createdAt" : "2019-05-01T14:40:02.110Z"
          }
        },
        {
          "messageCreate" : {
            "recipientId" : "2244994945",
            "reactions" : [ ],
            "urls" : [ ],
            "text" : "https://t.co/Im4geOnly1",
            "mediaUrls" : [ "https://t.co/Im4geOnly1" ],
            "senderId" : "783214",
            "id" : "1123589000000000002",
            "createdAt" : "2019-05-01T14:35:00.000Z"
          }
        },
        {
          "messageCreate" : {
            "recipientId" : "2244994945",
            "reactions" : [
              {
                "senderId" : "2244994945",
                "reactionKey" : "like",
                "eventId" : "1123588000000000009",
                "createdAt" : "2019-05-01T14:36:00.000Z"
              }
            ],
            "urls" : [
              {
                "url" : "https://t.co/GhRep0Lnk2",
                "expanded" : "https://github.com/example/parser",
                "display" : "github.com/example/parser"
              }
            ],
            "text" : "thanks! the code is at https://t.co/GhRep0Lnk2",
            "mediaUrls" : [ ],
            "senderId" : "783214",
            "id" : "1123585000000000001",
            "createdAt" : "2019-05-01T14:25:10.500Z"
          }
        },
        {
          "messageCreate" : {
            "recipientId" : "783214",
            "reactions" : [ ],
            "urls" : [ ],
            "text" : "hey, loved your post about the parser",
            "mediaUrls" : [ ],
            "senderId" : "2244994945",
            "id" : "1123584931426123777",
            "createdAt" : "2019-05-01T14:21:37.938Z"
          }
        },
        {
          "joinConversation" : {
            "initiatingUserId" : "2244994945",
            "participantsSnapshot" : [ "783214", "2244994945" ],
            "createdAt" : "2019-05-01T14:20:00.000Z"
          }
        }
      ]
    }
  }
]
